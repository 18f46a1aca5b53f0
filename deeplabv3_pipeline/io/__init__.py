"""Files on disk: raw ``.bin`` tensors as the guide's tools write them, atomic writes, hashes, a progress bar."""
