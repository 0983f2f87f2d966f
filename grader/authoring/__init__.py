"""Authoring: the student versions of assignments, their lint and their Colab set-up."""
