"""The MSH fields a message is routed and answered by, by name (unescaped; "" when absent)."""

from __future__ import annotations


class HeaderFields:
    """MSH fields by name, for a message that reads MSH-`field`.`comp` with `_msh_field`."""

    __slots__ = ()

    def _msh_field(self, field: int, comp: int = 0) -> str:
        raise NotImplementedError

    @property
    def control_id(self) -> str:
        """MSH-10, the message control id."""
        return self._msh_field(10)

    @property
    def message_type(self) -> str:
        """MSH-9.1, e.g. `ADT`."""
        return self._msh_field(9, 1)

    @property
    def message_structure(self) -> str:
        """MSH-9.3, e.g. `ADT_A01`."""
        return self._msh_field(9, 3)

    @property
    def version(self) -> str:
        """MSH-12.1, e.g. `2.5.1`."""
        return self._msh_field(12, 1)

    @property
    def sending_application(self) -> str:
        """MSH-3.1."""
        return self._msh_field(3, 1)

    @property
    def sending_facility(self) -> str:
        """MSH-4.1."""
        return self._msh_field(4, 1)

    @property
    def processing_id(self) -> str:
        """MSH-11.1, e.g. `P`."""
        return self._msh_field(11, 1)

    @property
    def accept_ack_type(self) -> str:
        """MSH-15 (AL, NE, ER, SU or "")."""
        return self._msh_field(15).strip()

    @property
    def application_ack_type(self) -> str:
        """MSH-16 (AL, NE, ER, SU or "")."""
        return self._msh_field(16).strip()
