"""The official OpenAI Python SDK against a running bridge (demo backend): what a user's script does."""

import base64
import urllib.request

import openai
import pytest

from support import BASE_URL, png_size

MODEL = "weightfree-txt2img"


def test_generate_b64_json(client):
    result = client.images.generate(
        model=MODEL, prompt="a lighthouse at dusk", size="256x256", response_format="b64_json", n=2
    )
    assert isinstance(result.created, int)
    assert len(result.data) == 2
    images = [base64.b64decode(d.b64_json) for d in result.data]
    assert [png_size(i) for i in images] == [(256, 256), (256, 256)]
    assert images[0] != images[1], "two images of one request must differ"
    assert result.size == "256x256"
    assert result.output_format == "png"


def test_generate_url(client):
    result = client.images.generate(model=MODEL, prompt="a red fox", size="64x64", response_format="url")
    url = result.data[0].url
    assert url.startswith(f"{BASE_URL}/images/")
    assert result.data[0].b64_json is None
    with urllib.request.urlopen(url) as resp:
        assert resp.headers["Content-Type"] == "image/png"
        assert png_size(resp.read()) == (64, 64)


def test_defaults_give_b64_json_of_the_default_model(client):
    result = client.images.generate(prompt="defaults", size="512x512")
    assert png_size(base64.b64decode(result.data[0].b64_json)) == (512, 512)


def test_extensions_through_extra_body(client):
    a = client.images.generate(model=MODEL, prompt="seeded", size="64x64", extra_body={"seed": 7})
    b = client.images.generate(model=MODEL, prompt="seeded", size="64x64", extra_body={"seed": 7})
    assert a.data[0].b64_json == b.data[0].b64_json
    assert a.data[0].model_extra["seed"] == 7


def test_bad_size_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.images.generate(model=MODEL, prompt="x", size="999x999")
    assert err.value.status_code == 400
    assert err.value.param == "size"
    assert "999x999" in err.value.message


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as err:
        client.images.generate(model="no-such-model", prompt="x")
    assert err.value.code == "model_not_found"


def test_models(client):
    ids = [m.id for m in client.models.list()]
    assert {"z-image-turbo", "sdxl", MODEL} <= set(ids)
    model = client.models.retrieve("sdxl")
    assert model.id == "sdxl" and model.owned_by == "comfyui"


def test_openai_model_names_make_images(client):
    # What Open WebUI and LibreChat send unasked: each runs the bridge's default model.
    for name in ["dall-e-3", "gpt-image-1"]:
        result = client.images.generate(model=name, prompt="a lighthouse", size="512x512")
        assert result.data[0].b64_json
    listed = {m.id: m for m in client.models.list()}
    assert listed["dall-e-3"].model_extra["alias_of"] == "z-image-turbo"
