"""The tasks rlenhance restores images for: the one list that the methods (:mod:`rlenhance.registry`),
the checkpoints' specs, the trainers, compare and the app read. Importing it imports nothing."""

#: The tasks, in the order the app's tabs and the docs list them.
TASKS = ("lowlight", "denoise", "completion")
