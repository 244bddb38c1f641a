"""The command line and the terminal views: `call`, `talk`, `serve`, `demo`, `tools`, `devices`."""
