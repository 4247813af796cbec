import openai
import pytest

from support import BASE_URL


@pytest.fixture
def client():
    return openai.OpenAI(base_url=f"{BASE_URL}/v1", api_key="sk-anything", max_retries=0)
