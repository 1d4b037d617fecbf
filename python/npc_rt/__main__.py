import sys

from npc_rt.cli import main

sys.exit(main())
