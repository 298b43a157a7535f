// Chat templates rendered as transformers' apply_chat_template does, on two templates shaped like the
// ones real checkpoints ship (ChatML as SmolLM2 / Qwen2 use it, Llama 2's [INST] template with its
// <<SYS>> block and alternation check); the expected strings are written out by hand.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import {
  chatFormatter,
  chatTemplateFromConfig,
  loadChatTemplate,
  renderChatTemplate,
  renderPlainChat,
  type ChatMessage,
} from '../../src-worker/formats/chat-template.ts';

// SmolLM2-Instruct's template: a default system turn when the conversation has none.
const CHATML = String.raw`{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`;

// Llama-2-chat's template as its tokenizer_config.json holds it.
const LLAMA2 = String.raw`{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}`;

const addedToken = (content: string) => ({ __type: 'AddedToken', content, lstrip: false, normalized: false, rstrip: false, single_word: false });
const llama2Config = { bos_token: addedToken('<s>'), eos_token: addedToken('</s>'), unk_token: addedToken('<unk>'), pad_token: null, chat_template: LLAMA2 };
const chatmlConfig = { bos_token: null, eos_token: '<|im_end|>', pad_token: '<|im_end|>', chat_template: CHATML };

const temp: string[] = [];
async function folder(files: Record<string, string>): Promise<string> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'chat-template-'));
  temp.push(dir);
  for (const [name, text] of Object.entries(files)) await fs.promises.writeFile(path.join(dir, name), text);
  return dir;
}
afterAll(async () => {
  for (const dir of temp) await fs.promises.rm(dir, { recursive: true, force: true });
});

function expectError(fn: () => unknown, code: string, pattern: RegExp): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(WorkbenchError);
    expect((error as WorkbenchError).code).toBe(code);
    expect((error as WorkbenchError).message).toMatch(pattern);
    return;
  }
  throw new Error(`expected an error matching ${pattern}`);
}

describe('ChatML (SmolLM2 / Qwen2)', () => {
  const template = chatTemplateFromConfig(chatmlConfig)!;

  it('adds the default system turn and the assistant opening when asked', () => {
    expect(renderChatTemplate(template, [{ role: 'user', content: 'What is 2+2?' }], { addGenerationPrompt: true })).toBe(
      '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' +
        '<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
  });

  it('keeps a given system turn and closes every turn, without a generation prompt by default', () => {
    const messages: ChatMessage[] = [
      { role: 'system', content: 'Answer in French.' },
      { role: 'user', content: 'Hello' },
      { role: 'assistant', content: 'Bonjour' },
    ];
    expect(renderChatTemplate(template, messages)).toBe(
      '<|im_start|>system\nAnswer in French.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nBonjour<|im_end|>\n',
    );
  });
});

describe('Llama 2 [INST]', () => {
  const template = chatTemplateFromConfig(llama2Config)!;

  it('reads bos/eos from AddedToken objects and folds the system prompt into the first user turn', () => {
    expect(template.specialTokens).toEqual({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>' });
    const messages: ChatMessage[] = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: ' Hi ' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'Bye' },
    ];
    // strip() applies to the whole first turn, so the user's leading space survives after <</SYS>> (as in Python).
    expect(renderChatTemplate(template, messages, { addGenerationPrompt: true })).toBe(
      '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi [/INST] Hello! </s><s>[INST] Bye [/INST]',
    );
    expect(renderChatTemplate(template, [{ role: 'user', content: ' Hi ' }])).toBe('<s>[INST] Hi [/INST]');
  });

  it("turns the template's raise_exception into an invalid_input error", () => {
    const twoUsers: ChatMessage[] = [
      { role: 'user', content: 'a' },
      { role: 'user', content: 'b' },
    ];
    expectError(() => renderChatTemplate(template, twoUsers), 'invalid_input', /rejected the conversation: Conversation roles must alternate/);
  });
});

describe('model folders', () => {
  it('reads chat_template from tokenizer_config.json, from a list with "default", or from chat_template.jinja', async () => {
    const fromConfig = await loadChatTemplate(await folder({ 'tokenizer_config.json': JSON.stringify(chatmlConfig) }));
    expect(fromConfig!.source).toBe(CHATML);
    const listed = {
      ...llama2Config,
      chat_template: [
        { name: 'tool_use', template: 'x' },
        { name: 'default', template: LLAMA2 },
      ],
    };
    expect((await loadChatTemplate(await folder({ 'tokenizer_config.json': JSON.stringify(listed) })))!.source).toBe(LLAMA2);
    const jinjaDir = await folder({ 'tokenizer_config.json': JSON.stringify({ eos_token: '<|im_end|>' }), 'chat_template.jinja': CHATML });
    const fromFile = await loadChatTemplate(jinjaDir);
    expect(fromFile!.file).toBe(path.join(jinjaDir, 'chat_template.jinja'));
    expect(fromFile!.specialTokens).toEqual({ eos_token: '<|im_end|>' });
    const render = await chatFormatter(jinjaDir, 'error');
    expect(render([{ role: 'system', content: 's' }], { addGenerationPrompt: true })).toBe('<|im_start|>system\ns<|im_end|>\n<|im_start|>assistant\n');
  });

  it('without a template: a model_invalid error, unless the plain format is chosen', async () => {
    const dir = await folder({ 'tokenizer_config.json': JSON.stringify({ eos_token: '</s>' }) });
    expect(await loadChatTemplate(dir)).toBeNull();
    await expect(chatFormatter(dir, 'error')).rejects.toMatchObject({
      code: 'model_invalid',
      message: expect.stringMatching(/has no chat template .*choose the plain "User: \.\.\.\\nAssistant:" format/),
    });
    const plain = await chatFormatter(dir, 'plain');
    expect(plain).toBe(renderPlainChat);
    const messages: ChatMessage[] = [
      { role: 'system', content: 'Be kind.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello.' },
      { role: 'user', content: 'Bye' },
    ];
    expect(plain(messages, { addGenerationPrompt: true })).toBe('System: Be kind.\n\nUser: Hi\nAssistant: Hello.\nUser: Bye\nAssistant:');
    expect(plain([{ role: 'user', content: 'Hi' }])).toBe('User: Hi\n');
  });

  it('names a template that does not parse and a malformed chat_template field', async () => {
    expectError(
      () => renderChatTemplate(chatTemplateFromConfig({ chat_template: '{% for m in messages %}{{ m.content }}' }, 'x/tokenizer_config.json')!, []),
      'format_invalid',
      /x\/tokenizer_config\.json: the chat template does not parse/,
    );
    expectError(() => chatTemplateFromConfig({ chat_template: 42 }), 'format_invalid', /"chat_template" is number/);
    expectError(
      () =>
        chatTemplateFromConfig({
          chat_template: [
            { name: 'rag', template: 'x' },
            { name: 'tool_use', template: 'y' },
          ],
        }),
      'format_invalid',
      /none named "default"/,
    );
  });
});
