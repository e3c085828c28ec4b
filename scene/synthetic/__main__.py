"""python -m scene.synthetic OUT [...]: write the synthetic scene (see scene.synthetic.generator)."""
import sys

from scene.synthetic.generator import main

sys.exit(main())
