"""fastserve's command line and run-directory handling. Sits on top of every other package."""
