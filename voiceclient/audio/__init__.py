"""Audio edges: one internal PCM shape, sources that are pulled and paced, sinks that keep the timeline."""
