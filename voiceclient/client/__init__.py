"""The client: the call (`VoiceCall`), its HTTP calls API, settings, recording and the ordered event dispatcher."""
