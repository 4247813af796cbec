"""Chat completions and streamed images through the official OpenAI Python SDK, as a user's
script or a chat client's backend calls them."""

import base64
import re

import openai
import pytest

from support import png, png_size

TXT2IMG = "weightfree-txt2img"
SAMPLER = "sdxl"  # a workflow with a sampler: it reports steps and preview frames

DATA_URL_IMAGE = re.compile(r"!\[([^\]]*)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


def images_in(content: str) -> list[bytes]:
    return [base64.b64decode(m.group(2)) for m in DATA_URL_IMAGE.finditer(content)]


def test_chat_completion(client):
    completion = client.chat.completions.create(
        model=TXT2IMG,
        messages=[
            {"role": "system", "content": "You draw."},
            {"role": "user", "content": "a lighthouse"},
        ],
        temperature=0.2,
        extra_body={"size": "64x64"},
    )
    assert completion.object == "chat.completion"
    assert isinstance(completion.created, int)
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    content = choice.message.content
    assert isinstance(content, str)
    [image] = images_in(content)
    assert png_size(image) == (64, 64)
    assert DATA_URL_IMAGE.search(content).group(1) == "a lighthouse"
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_stream_with_progress_and_usage(client):
    stream = client.chat.completions.create(
        model=SAMPLER,
        messages=[{"role": "user", "content": "a castle"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"size": "512x512", "steps": 4},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    with_choices = [c for c in chunks if c.choices]
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in with_choices)
    assert "Step 4 of 4." in reasoning
    content = "".join(c.choices[0].delta.content or "" for c in with_choices)
    assert "Step 1 of 4." not in content
    [image] = images_in(content)
    assert png_size(image) == (512, 512)
    assert [c.choices[0].finish_reason for c in with_choices if c.choices[0].finish_reason] == ["stop"]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens > 0


def test_chat_stream_helper_assembles_the_answer(client):
    with client.chat.completions.stream(
        model=TXT2IMG,
        messages=[{"role": "user", "content": "a red fox"}],
        extra_body={"size": "64x64"},
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "stop"
    [image] = images_in(final.choices[0].message.content)
    assert png_size(image) == (64, 64)


def test_chat_image_part_edits_it(client):
    made = client.chat.completions.create(
        model=TXT2IMG, messages=[{"role": "user", "content": "a boat"}], extra_body={"size": "64x64"}
    )
    url = DATA_URL_IMAGE.search(made.choices[0].message.content).group(0).split("](", 1)[1][:-1]
    edited = client.chat.completions.create(
        model="weightfree-img2img",
        messages=[
            {"role": "user", "content": "a boat"},
            {"role": "assistant", "content": made.choices[0].message.content},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "the same boat at night"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            },
        ],
    )
    [image] = images_in(edited.choices[0].message.content)
    assert png_size(image) == (64, 64)


def test_chat_bad_request_raises_before_streaming(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=TXT2IMG, messages=[{"role": "user", "content": "  "}], stream=True
        )
    assert err.value.body["param"] == "messages"


def test_images_generate_stream_with_partials(client):
    stream = client.images.generate(
        model=SAMPLER,
        prompt="a castle",
        size="512x512",
        stream=True,
        partial_images=2,
        extra_body={"steps": 9},
    )
    events = list(stream)
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    done = events[-1]
    assert png_size(base64.b64decode(done.b64_json)) == (512, 512)
    assert done.size == "512x512" and done.output_format == "png"
    assert done.usage.input_tokens_details.text_tokens > 0


def test_images_edit_stream(client, tmp_path):
    red = tmp_path / "red.png"
    red.write_bytes(png(32, 32, lambda x, y: (200, 30, 30, 255)))
    stream = client.images.edit(
        model="sdxl-img2img",
        image=red.open("rb"),
        prompt="oil painting",
        size="512x512",
        stream=True,
        partial_images=1,
        extra_body={"steps": 6},
    )
    events = list(stream)
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    assert png_size(base64.b64decode(events[-1].b64_json)) == (512, 512)


def test_progress_events_are_opt_in_and_tolerated(client):
    stream = client.images.generate(
        model=SAMPLER,
        prompt="x",
        size="512x512",
        stream=True,
        extra_body={"steps": 3, "stream_progress": True},
    )
    types = [e.type for e in stream]
    assert types[-1] == "image_generation.completed"
    assert types.count("image_generation.progress") >= 4  # queued, then a step at a time


def test_a_stream_sent_again_with_its_key_resumes(client):
    """A script whose stream broke sends it again with the same Idempotency-Key: it gets the
    events the first stream had, then the rest of the same job, not a new run."""
    settings = dict(
        model=SAMPLER,
        prompt="a lighthouse at dusk",
        size="512x512",
        stream=True,
        partial_images=2,
        extra_body={"steps": 20, "stream_progress": True},
        extra_headers={"Idempotency-Key": "sdk-stream-resumes"},
    )
    first = client.images.generate(**settings)
    seen = []
    for event in first:
        seen.append(event)
        if event.type == "image_generation.partial_image":
            break
    first.response.close()

    again = list(client.images.generate(**settings))
    assert [e.to_dict() for e in again[: len(seen)]] == [e.to_dict() for e in seen]
    types = [e.type for e in again]
    assert types.count("image_generation.partial_image") == 2
    assert types[-1] == "image_generation.completed"
    done = again[-1]
    assert png_size(base64.b64decode(done.b64_json)) == (512, 512)

    # Once it is done, the same key replays the whole stream.
    assert [e.to_dict() for e in client.images.generate(**settings)] == [e.to_dict() for e in again]
