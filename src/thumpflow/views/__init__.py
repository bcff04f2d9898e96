"""Operational read models (views) projected from committed events under an ownership matrix.

`facts` reads what an event says about beds and patients, `state` applies it
under the ownership matrix (`config.views`), `read` computes the bed board,
census, transfer queue, ED boarding list and dirty-bed queue. All three are
pure; `live` keeps a projection current as events commit and rebuilds it
from the event log through `core.ports.EventLog`.
"""
