"""The one exception type whose message is meant for the user.

CLIs print it as a single line and exit 2; pages show it with ``st.error``.
Anything else that escapes is a bug.
"""


class InputError(ValueError):
    """Bad input from the user: a data spec, a file, coordinates, a bundle."""
