"""`python -m thumpflow.testing.ehr --port N ...`: run the simulated EHR until SIGTERM/SIGINT."""

import sys

from thumpflow.testing.ehr._cli import main

sys.exit(main())
