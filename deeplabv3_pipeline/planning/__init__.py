"""Planning: which files a run makes (frames, shards, models, cells), the variants, where each job writes."""
