"""The command layer: argument types and checks shared by the ``mgdm`` commands."""
