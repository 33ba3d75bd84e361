"""The model recommender: a task's profile (`profile`), ranking (`ranking`) and the guide (`guide`)."""
