"""Copy-paste setup snippets: the portal's setup call and the console home show the same."""

from __future__ import annotations

import json


def snippets(openai_base: str, model: str, api_key: str | None = None) -> dict[str, str]:
    """Each snippet reads the key from OXINF_API_KEY: keys must never be pasted into code.

    With `api_key` (the console's one-time key dialog, the only moment the full key exists)
    the snippet sets that variable first, so it runs as copied and still shows where the
    key belongs."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
    curl = (
        f"curl {openai_base}/chat/completions \\\n"
        '  -H "Authorization: Bearer $OXINF_API_KEY" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d '{body}'"
    )
    python = (
        "import os\n"
        "from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{openai_base}", api_key=os.environ["OXINF_API_KEY"])\n'
        "reply = client.chat.completions.create(\n"
        f'    model="{model}",\n'
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        ")\n"
        "print(reply.choices[0].message.content)\n"
    )
    javascript = (
        'import OpenAI from "openai";\n\n'
        f'const client = new OpenAI({{ baseURL: "{openai_base}", '
        "apiKey: process.env.OXINF_API_KEY });\n"
        "const reply = await client.chat.completions.create({\n"
        f'  model: "{model}",\n'
        '  messages: [{ role: "user", content: "Hello!" }],\n'
        "});\n"
        "console.log(reply.choices[0].message.content);\n"
    )
    if api_key is not None:
        curl = f"export OXINF_API_KEY={api_key}\n\n{curl}"
        python = python.replace(
            "from openai import OpenAI\n\n",
            "from openai import OpenAI\n\n"
            "# Better: set OXINF_API_KEY in your shell or secret manager, not in code.\n"
            f'os.environ.setdefault("OXINF_API_KEY", "{api_key}")\n',
        )
        javascript = javascript.replace(
            'import OpenAI from "openai";\n\n',
            'import OpenAI from "openai";\n\n'
            "// Better: set OXINF_API_KEY in your environment, not in code.\n"
            f'process.env.OXINF_API_KEY ??= "{api_key}";\n',
        )
    return {"curl": curl, "python": python, "javascript": javascript}
