"""The model recommender: a task's profile (`profile`), ranking (`ranking`) and the guide (`guide`)."""

from typing import Literal

Priority = Literal["balanced", "cheapest", "fastest", "best"]
"""`recommend_model`'s `priority`: here, not in `ranking`, so the tool's signature loads no recommender code
(the server imports `ranking`, `profile` and `guide` on the first call that needs them)."""
