"""What the SDKs do when ComfyUI is down: a streamed request must be a plain 503 with
Retry-After, which the SDK retries, not a 200 whose stream carries the error (which it never
retries)."""

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def bridge_without_comfyui():
    """A bridge of its own, pointed at a port where nothing listens."""
    binary = os.environ.get("BRIDGE_BIN")
    assert binary, "scripts/test sets BRIDGE_BIN to the bridge binary"
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        proc = subprocess.Popen(
            [
                binary,
                "--listen", f"127.0.0.1:{port}",
                "--comfyui-url", f"http://127.0.0.1:{free_port()}",
                "--workflows-dir", str(ROOT / "workflows"),
                "--data-dir", data,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    httpx.get(f"{url}/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def counting_client(url: str, sent: list) -> openai.OpenAI:
    http = httpx.Client(event_hooks={"request": [lambda request: sent.append(request.url.path)]})
    return openai.OpenAI(base_url=f"{url}/v1", api_key="sk-anything", max_retries=1, http_client=http)


def test_an_image_stream_is_retried_when_comfyui_is_down(bridge_without_comfyui):
    sent = []
    client = counting_client(bridge_without_comfyui, sent)
    with pytest.raises(openai.InternalServerError) as failure:
        stream = client.images.generate(
            model="weightfree-txt2img", prompt="x", size="64x64", stream=True, partial_images=1
        )
        list(stream)
    assert failure.value.status_code == 503
    assert failure.value.response.headers["retry-after"]
    assert failure.value.body["code"] == "comfyui_unavailable"
    assert sent == ["/v1/images/generations"] * 2, "the SDK sent it again"


def test_a_chat_stream_is_retried_when_comfyui_is_down(bridge_without_comfyui):
    sent = []
    client = counting_client(bridge_without_comfyui, sent)
    with pytest.raises(openai.InternalServerError) as failure:
        stream = client.chat.completions.create(
            model="weightfree-txt2img",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
        )
        list(stream)
    assert failure.value.status_code == 503
    assert sent == ["/v1/chat/completions"] * 2, "the SDK sent it again"


def test_a_timed_out_call_is_retried_onto_the_job_already_running():
    """The SDK gives up after its timeout and sends the request again, without any key of the
    caller's: the retry must wait for the job its first attempt started. Were each attempt a new
    job, each would time out in turn and the call would fail."""
    from support import BASE_URL

    settings = dict(model="sdxl", size="512x512", response_format="b64_json")
    extra = {"steps": 6}
    patient = openai.OpenAI(base_url=f"{BASE_URL}/v1", api_key="sk-anything", max_retries=0)
    started = time.monotonic()
    patient.images.generate(prompt="how long a job takes", extra_body=extra, **settings)
    took = time.monotonic() - started

    sent = []
    hasty = openai.OpenAI(
        base_url=f"{BASE_URL}/v1",
        api_key="sk-anything",
        # Each attempt gives up well before the job can end.
        timeout=took / 3,
        max_retries=2,
        http_client=httpx.Client(
            event_hooks={"request": [lambda request: sent.append(request.headers.get("x-stainless-retry-count"))]}
        ),
    )
    result = hasty.images.generate(prompt=f"a lighthouse {time.time()}", extra_body=extra, **settings)
    assert result.data[0].b64_json
    assert sent[0] == "0" and len(sent) >= 2, f"the first attempt timed out: {sent}"
