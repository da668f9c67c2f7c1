"""The producer side: ``Experiment`` writes records through a backend."""
