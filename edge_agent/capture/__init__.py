"""Frame sources behind one protocol: folders, files, cameras, network streams, GStreamer pipelines."""
