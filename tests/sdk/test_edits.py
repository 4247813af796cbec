"""Image edits and variations through the official OpenAI Python SDK, as a user's script sends them."""

import base64
import io

import openai
import pytest

from support import BASE_URL, png, png_size


def named(data: bytes, name: str) -> io.BytesIO:
    f = io.BytesIO(data)
    f.name = name
    return f


RED = lambda x, y: (220, 20, 20, 255)  # noqa: E731


def test_edit_with_one_image(client):
    result = client.images.edit(
        model="weightfree-img2img",
        image=named(png(64, 64, RED), "photo.png"),
        prompt="make it rusty",
        size="256x256",
        extra_body={"strength": 0.4},
    )
    assert png_size(base64.b64decode(result.data[0].b64_json)) == (256, 256)
    assert result.size == "256x256"


def test_edit_with_a_mask(client):
    mask = png(64, 64, lambda x, y: (0, 0, 0, 0 if x < 32 else 255))
    result = client.images.edit(
        model="weightfree-inpaint",
        image=named(png(64, 64, RED), "wall.png"),
        mask=named(mask, "mask.png"),
        prompt="a window",
        size="64x64",
        response_format="url",
    )
    assert result.data[0].url.startswith(f"{BASE_URL}/images/")


def test_edit_with_a_list_of_images_and_raw_bytes(client):
    # A list goes out as `image[]`; raw bytes go out untyped, named "upload".
    result = client.images.edit(
        model="weightfree-blend",
        image=[png(32, 32, RED), png(32, 32, lambda x, y: (0, 0, 255, 255))],
        prompt="blend",
        size="64x64",
    )
    assert png_size(base64.b64decode(result.data[0].b64_json)) == (64, 64)


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
def test_variation(client):
    result = client.images.create_variation(
        model="weightfree-img2img", image=named(png(64, 64, RED), "a.png"), n=2, size="256x256"
    )
    assert len(result.data) == 2
    assert [png_size(base64.b64decode(d.b64_json)) for d in result.data] == [(256, 256)] * 2


def test_bad_edits_raise_bad_request(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.images.edit(model="weightfree-img2img", image=named(b"not an image", "a.png"), prompt="x")
    assert err.value.body["param"] == "image"
    with pytest.raises(openai.BadRequestError) as err:
        client.images.edit(model="weightfree-txt2img", image=named(png(8, 8, RED), "a.png"), prompt="x")
    assert err.value.body["param"] == "model"
