"""The web app (projects, labelling, background tuning, comparison); built on the sdpt library."""
