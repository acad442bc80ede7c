"""image_classification."""
