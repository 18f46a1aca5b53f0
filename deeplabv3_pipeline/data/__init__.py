"""The data: Cityscapes conventions and discovery, the synthetic demo dataset, the guide's preprocessing."""
