"""The application built on the keras_hubkit library.

The `hubkit` command line (`cli`), recipes (`recipe`), the training
pipeline that writes a run's files (`train`), search reports (`search`),
data loading (`data`), pictures (`plots`), the offline demo (`demo`) and
the text `hubkit inspect` prints (`_describe`).

The direction is one way: this package imports the library
(`keras_hubkit.*`); nothing in the library imports this package. Its
modules load their heavy dependencies (TensorFlow, matplotlib, Pillow,
scikit-learn) only when a command needs them, so `hubkit --help` starts
fast.
"""
