"""Where processes run: one seam for training jobs and endpoint instances."""
