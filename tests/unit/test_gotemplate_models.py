"""Whole templates in the shape of Ollama's model templates, rendered by pollama.template.go.
"""

from __future__ import annotations

import pytest

from pollama.template.go import (
    Template,
)
from pollama.template.ollama import (
    references,
)
from tests.unit.gotemplate_data import (
    CHATML_TOOLS,
    GEMMA,
    LLAMA3_TOOLS,
    MISTRAL_TOOLS,
    THINKING,
    ollama_values,
)

MODEL_CASES = [
    pytest.param(
        CHATML_TOOLS,
        "user",
        ("<|im_start|>user\nHello, how are you?<|im_end|>\n<|im_start|>assistant\n"),
        id="qwen-user",
    ),
    pytest.param(
        CHATML_TOOLS,
        "chat",
        (
            "<|im_start|>system\n"
            "You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\n"
            "Hello, how are you?<|im_end|>\n"
            "<|im_start|>assistant\n"
            "I'm doing great. How can I help you today?<|im_end|>\n"
            "<|im_start|>user\n"
            "I'd like to show off how chat templating works!<|im_end|>\n"
            "<|im_start|>assistant\n"
        ),
        id="qwen-chat",
    ),
    pytest.param(
        CHATML_TOOLS,
        "tools",
        (
            "<|im_start|>system\n"
            "Sys <x> & y\n"
            "\n"
            "# Tools\n"
            "\n"
            "You may call one or more functions to assist with the user query.\n"
            "\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n"
            "<tools>\n"
            '{"type": "function", "function": {get_weather Get the <weath'
            "er> & more {object <nil> <nil> [location] map[location:map[d"
            "escription:City type:string] unit:map[enum:[celsius fahrenhe"
            "it] type:string]]}}}\n"
            "</tools>\n"
            "\n"
            "For each function call, return a json object with function n"
            "ame and arguments within <tool_call></tool_call> XML tags:\n"
            "<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n'
            "</tool_call><|im_end|>\n"
            "<|im_start|>user\n"
            "What's the weather in Paris?<|im_end|>\n"
            "<|im_start|>assistant\n"
            "<tool_call>\n"
            '{"name": "get_weather", "arguments": {"days":3,"f":1.5,"loca'
            'tion":"Paris","nested":{"a":null,"b":[1,2]},"unit":"celsius"}}\n'
            "</tool_call><|im_end|>\n"
            "<|im_start|>user\n"
            "<tool_response>\n"
            '{"temp": 20}\n'
            "</tool_response><|im_end|>\n"
            "<|im_start|>assistant\n"
            "It is 20 degrees."
        ),
        id="qwen-tools",
    ),
    pytest.param(
        CHATML_TOOLS,
        "tools_pending",
        (
            "<|im_start|>system\n"
            "Sys <x> & y\n"
            "\n"
            "# Tools\n"
            "\n"
            "You may call one or more functions to assist with the user query.\n"
            "\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n"
            "<tools>\n"
            '{"type": "function", "function": {get_weather Get the <weath'
            "er> & more {object <nil> <nil> [location] map[location:map[d"
            "escription:City type:string] unit:map[enum:[celsius fahrenhe"
            "it] type:string]]}}}\n"
            "</tools>\n"
            "\n"
            "For each function call, return a json object with function n"
            "ame and arguments within <tool_call></tool_call> XML tags:\n"
            "<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n'
            "</tool_call><|im_end|>\n"
            "<|im_start|>user\n"
            "What's the weather in Paris?<|im_end|>\n"
            "<|im_start|>assistant\n"
        ),
        id="qwen-tools_pending",
    ),
    pytest.param(
        LLAMA3_TOOLS,
        "user",
        (
            "<|start_header_id|>user<|end_header_id|>\n"
            "\n"
            "Hello, how are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
            "\n"
        ),
        id="llama31-user",
    ),
    pytest.param(
        LLAMA3_TOOLS,
        "chat",
        (
            "<|start_header_id|>system<|end_header_id|>\n"
            "\n"
            "You are a helpful assistant.<|eot_id|><|start_header_id|>use"
            "r<|end_header_id|>\n"
            "\n"
            "Hello, how are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
            "\n"
            "I'm doing great. How can I help you today?<|eot_id|><|start_"
            "header_id|>user<|end_header_id|>\n"
            "\n"
            "I'd like to show off how chat templating works!<|eot_id|><|s"
            "tart_header_id|>assistant<|end_header_id|>\n"
            "\n"
        ),
        id="llama31-chat",
    ),
    pytest.param(
        LLAMA3_TOOLS,
        "tools",
        (
            "<|start_header_id|>system<|end_header_id|>\n"
            "\n"
            "Sys <x> & y\n"
            "\n"
            "Cutting Knowledge Date: December 2023\n"
            "\n"
            "When you receive a tool call response, use the output to for"
            "mat an answer to the orginal user question.\n"
            "\n"
            "You are a helpful assistant with tool calling capabilities.<"
            "|eot_id|><|start_header_id|>user<|end_header_id|>\n"
            "\n"
            "What's the weather in Paris?<|eot_id|><|start_header_id|>ass"
            "istant<|end_header_id|>\n"
            "\n"
            '{"name": "get_weather", "parameters": {"days":3,"f":1.5,"loc'
            'ation":"Paris","nested":{"a":null,"b":[1,2]},"unit":"celsius'
            '"}}<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n'
            "\n"
            '{"temp": 20}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n'
            "\n"
            "It is 20 degrees."
        ),
        id="llama31-tools",
    ),
    pytest.param(
        LLAMA3_TOOLS,
        "tools_pending",
        (
            "<|start_header_id|>system<|end_header_id|>\n"
            "\n"
            "Sys <x> & y\n"
            "\n"
            "Cutting Knowledge Date: December 2023\n"
            "\n"
            "When you receive a tool call response, use the output to for"
            "mat an answer to the orginal user question.\n"
            "\n"
            "You are a helpful assistant with tool calling capabilities.<"
            "|eot_id|><|start_header_id|>user<|end_header_id|>\n"
            "\n"
            "Given the following functions, please respond with a JSON fo"
            "r a function call with its proper arguments that best answer"
            "s the given prompt.\n"
            "\n"
            'Respond in the format {"name": function name, "parameters": '
            "dictionary of argument name and its value}. Do not use variables.\n"
            "\n"
            '{"type":"function","function":{"name":"get_weather","descrip'
            'tion":"Get the \\u003cweather\\u003e \\u0026 more","parameters"'
            ':{"type":"object","required":["location"],"properties":{"loc'
            'ation":{"description":"City","type":"string"},"unit":{"enum"'
            ':["celsius","fahrenheit"],"type":"string"}}}}}\n'
            "\n"
            "What's the weather in Paris?<|eot_id|><|start_header_id|>ass"
            "istant<|end_header_id|>\n"
            "\n"
        ),
        id="llama31-tools_pending",
    ),
    pytest.param(MISTRAL_TOOLS, "user", "[INST] Hello, how are you?[/INST]", id="mistral-user"),
    pytest.param(
        MISTRAL_TOOLS,
        "chat",
        (
            "[SYSTEM_PROMPT]You are a helpful assistant.[/SYSTEM_PROMPT]["
            "INST] Hello, how are you?[/INST] I'm doing great. How can I "
            "help you today?</s>[INST] You are a helpful assistant.\n"
            "\n"
            "I'd like to show off how chat templating works![/INST]"
        ),
        id="mistral-chat",
    ),
    pytest.param(
        MISTRAL_TOOLS,
        "tools",
        (
            "[SYSTEM_PROMPT]Sys <x> & y[/SYSTEM_PROMPT][INST] What's the "
            'weather in Paris?[/INST][TOOL_CALLS] [{"name": "get_weather"'
            ', "arguments": {"days":3,"f":1.5,"location":"Paris","nested"'
            ':{"a":null,"b":[1,2]},"unit":"celsius"}}]</s>[TOOL_RESULTS] '
            '{"content": {"temp": 20}} [/TOOL_RESULTS] It is 20 degrees.'
        ),
        id="mistral-tools",
    ),
    pytest.param(
        MISTRAL_TOOLS,
        "tools_pending",
        (
            "[SYSTEM_PROMPT]Sys <x> & y[/SYSTEM_PROMPT][AVAILABLE_TOOLS] "
            '[{"type":"function","function":{"name":"get_weather","descri'
            'ption":"Get the \\u003cweather\\u003e \\u0026 more","parameters'
            '":{"type":"object","required":["location"],"properties":{"lo'
            'cation":{"description":"City","type":"string"},"unit":{"enum'
            '":["celsius","fahrenheit"],"type":"string"}}}}}][/AVAILABLE_'
            "TOOLS][INST] Sys <x> & y\n"
            "\n"
            "What's the weather in Paris?[/INST]"
        ),
        id="mistral-tools_pending",
    ),
    pytest.param(
        GEMMA,
        "user",
        ("<start_of_turn>user\nHello, how are you?<end_of_turn>\n<start_of_turn>model\n"),
        id="gemma-user",
    ),
    pytest.param(
        GEMMA,
        "chat",
        (
            "<start_of_turn>user\n"
            "You are a helpful assistant.<end_of_turn>\n"
            "<start_of_turn>user\n"
            "Hello, how are you?<end_of_turn>\n"
            "<start_of_turn>model\n"
            "I'm doing great. How can I help you today?<end_of_turn>\n"
            "<start_of_turn>user\n"
            "I'd like to show off how chat templating works!<end_of_turn>\n"
            "<start_of_turn>model\n"
        ),
        id="gemma-chat",
    ),
    pytest.param(
        GEMMA,
        "tools",
        (
            "<start_of_turn>user\n"
            "Sys <x> & y<end_of_turn>\n"
            "<start_of_turn>user\n"
            "What's the weather in Paris?<end_of_turn>\n"
            "<start_of_turn>model\n"
            "<end_of_turn>\n"
            "<start_of_turn>model\n"
            "It is 20 degrees."
        ),
        id="gemma-tools",
    ),
    pytest.param(
        GEMMA,
        "tools_pending",
        (
            "<start_of_turn>user\n"
            "Sys <x> & y<end_of_turn>\n"
            "<start_of_turn>user\n"
            "What's the weather in Paris?<end_of_turn>\n"
            "<start_of_turn>model\n"
        ),
        id="gemma-tools_pending",
    ),
    pytest.param(
        THINKING, "user", "<|user|>\nHello, how are you?<|assistant|>", id="thinking-user"
    ),
    pytest.param(
        THINKING,
        "chat",
        (
            "<|system|>\n"
            "You are a helpful assistant.<|user|>\n"
            "Hello, how are you?<|assistant|>\n"
            "I'm doing great. How can I help you today?<|user|>\n"
            "I'd like to show off how chat templating works!<|assistant|>"
        ),
        id="thinking-chat",
    ),
    pytest.param(
        THINKING,
        "tools",
        (
            "<|system|>\n"
            "Sys <x> & y<|user|>\n"
            "What's the weather in Paris?<|assistant|>\n"
            "<|tool|>\n"
            '{"temp": 20}<|assistant|><think>done</think>\n'
            "It is 20 degrees."
        ),
        id="thinking-tools",
    ),
    pytest.param(
        THINKING,
        "tools_pending",
        ("<|system|>\nSys <x> & y<|user|>\nWhat's the weather in Paris?<|assistant|>"),
        id="thinking-tools_pending",
    ),
]


@pytest.mark.parametrize(("text", "conversation", "expected"), MODEL_CASES)
def test_model_templates(text: str, conversation: str, expected: str) -> None:
    tmpl = Template.parse(text)
    assert references(tmpl, "Messages")
    assert tmpl.execute(ollama_values(conversation)) == expected
