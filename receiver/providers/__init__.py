"""Provider adapters, one module each; `REGISTRY` maps provider ids to their classes."""

from __future__ import annotations

from receiver.providers.aitronos import Aitronos
from receiver.providers.assemblyai import AssemblyAI
from receiver.providers.base import Provider
from receiver.providers.deepgram import Deepgram
from receiver.providers.generic import Generic
from receiver.providers.gladia import Gladia
from receiver.providers.recall import Recall
from receiver.providers.revai import RevAI
from receiver.providers.speechmatics import Speechmatics

REGISTRY: dict[str, type[Provider]] = {
    cls.name: cls
    for cls in (
        Generic,
        AssemblyAI,
        Recall,
        Gladia,
        Deepgram,
        RevAI,
        Speechmatics,
        Aitronos,
    )
}

DEFAULT_BASE_URLS: dict[str, str] = {
    "generic": "http://127.0.0.1:8000",
    "assemblyai": "https://api.assemblyai.com",
    "recall": "https://us-east-1.recall.ai",
    "gladia": "https://api.gladia.io",
    "deepgram": "https://api.deepgram.com",
    "revai": "https://api.rev.ai",
    "speechmatics": "https://asr.api.speechmatics.com",
    "aitronos": "https://api.aitronos.com",
}
