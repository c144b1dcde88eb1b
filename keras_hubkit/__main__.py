"""`python -m keras_hubkit` runs the `hubkit` command line."""

from keras_hubkit.app.cli import main

raise SystemExit(main())
