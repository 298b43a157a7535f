// Chat prompts from a model folder's chat template: tokenizer_config.json's "chat_template" (or the
// chat_template.jinja file newer transformers versions save next to it), a Jinja template rendered by
// @huggingface/jinja with the variables transformers' apply_chat_template passes: messages,
// add_generation_prompt and the special tokens as strings (bos_token, eos_token, ...); the library
// defines raise_exception itself.
// A folder without a template is an error unless the caller explicitly chose the plain fallback.
import fs from 'node:fs';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { WorkbenchError } from '../../src-shared/errors.ts';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string;
}

export interface ChatTemplate {
  /** The Jinja source, as saved. */
  source: string;
  /** Where it came from, for error messages. */
  file: string;
  /** bos_token, eos_token, unk_token, pad_token, sep_token, cls_token, mask_token: the strings the template sees. */
  specialTokens: Record<string, string>;
}

export interface RenderOptions {
  /** Ends the prompt with the opening of an assistant turn, as generation needs. */
  addGenerationPrompt?: boolean;
}

/** What to do for a folder without a chat template; 'plain' must be chosen explicitly. */
export type ChatFallback = 'error' | 'plain';

const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token'] as const;

/** tokenizer_config.json writes special tokens as a string or as a serialized AddedToken {content, ...}. */
function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string')
    return (value as { content: string }).content;
  return null;
}

/** "chat_template" is a string, or a list of {name, template} of which "default" is the chat one. */
function pickTemplate(value: unknown, file: string): string | null {
  if (value == null) return null;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value as { name?: unknown; template?: unknown }[];
    const chosen = named.find((t) => t.name === 'default') ?? (named.length === 1 ? named[0] : undefined);
    if (chosen && typeof chosen.template === 'string') return chosen.template;
    throw new WorkbenchError(
      'format_invalid',
      `${file}: "chat_template" lists templates ${named.map((t) => JSON.stringify(t.name)).join(', ')} but none named "default".`,
      { file },
    );
  }
  throw new WorkbenchError('format_invalid', `${file}: "chat_template" is ${typeof value}, expected a string or a list of {name, template}.`, { file });
}

/** A template from a parsed tokenizer_config.json (source = its path, for messages), or null when it has none. */
export function chatTemplateFromConfig(tokenizerConfig: Record<string, unknown>, source = 'tokenizer_config.json'): ChatTemplate | null {
  const template = pickTemplate(tokenizerConfig.chat_template, source);
  if (template === null) return null;
  const specialTokens: Record<string, string> = {};
  for (const key of SPECIAL_TOKEN_KEYS) {
    const content = tokenContent(tokenizerConfig[key]);
    if (content !== null) specialTokens[key] = content;
  }
  return { source: template, file: source, specialTokens };
}

/** Reads the chat template of a model folder; null when it has none. */
export async function loadChatTemplate(modelDir: string): Promise<ChatTemplate | null> {
  const configFile = path.join(modelDir, 'tokenizer_config.json');
  let config: Record<string, unknown> = {};
  try {
    const json: unknown = JSON.parse(await fs.promises.readFile(configFile, 'utf-8'));
    if (typeof json === 'object' && json !== null && !Array.isArray(json)) config = json as Record<string, unknown>;
    else throw new Error('not a JSON object');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new WorkbenchError('format_invalid', `${configFile} is not valid JSON: ${(error as Error).message}`, { file: configFile });
    }
  }
  const fromConfig = chatTemplateFromConfig(config, configFile);
  if (fromConfig) return fromConfig;
  const jinjaFile = path.join(modelDir, 'chat_template.jinja');
  const source = await fs.promises.readFile(jinjaFile, 'utf-8').catch(() => null);
  if (source === null) return null;
  return { ...chatTemplateFromConfig({ ...config, chat_template: source }, jinjaFile)! };
}

/** Renders messages with the template, as apply_chat_template(messages, tokenize=False) does. */
export function renderChatTemplate(template: ChatTemplate, messages: readonly ChatMessage[], options: RenderOptions = {}): string {
  let compiled: Template;
  try {
    compiled = new Template(template.source);
  } catch (error) {
    throw new WorkbenchError('format_invalid', `${template.file}: the chat template does not parse: ${(error as Error).message}`, { file: template.file });
  }
  try {
    return compiled.render({
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: options.addGenerationPrompt ?? false,
      ...template.specialTokens,
    });
  } catch (error) {
    // Errors after parsing come from the conversation: mostly the template's own raise_exception
    // (@huggingface/jinja defines it as transformers does), e.g. roles that do not alternate.
    throw new WorkbenchError('invalid_input', `${template.file}: the chat template rejected the conversation: ${(error as Error).message}`, {
      file: template.file,
    });
  }
}

/**
 * The plain fallback: "System: ...\n\n" (if any), then "User: ...\nAssistant: ...\n" per turn, ending
 * with "Assistant:" when a generation prompt is asked for.
 */
export function renderPlainChat(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
  const label = (role: string) => role.charAt(0).toUpperCase() + role.slice(1);
  let out = '';
  for (const m of messages) out += m.role === 'system' ? `System: ${m.content}\n\n` : `${label(m.role)}: ${m.content}\n`;
  return options.addGenerationPrompt ? `${out}Assistant:` : out;
}

/** A renderer for a folder: its template, or the plain format when the caller chose `fallback: 'plain'`. */
export async function chatFormatter(modelDir: string, fallback: ChatFallback): Promise<(messages: readonly ChatMessage[], options?: RenderOptions) => string> {
  const template = await loadChatTemplate(modelDir);
  if (template) return (messages, options) => renderChatTemplate(template, messages, options);
  if (fallback === 'plain') return renderPlainChat;
  throw new WorkbenchError(
    'model_invalid',
    `${modelDir} has no chat template ("chat_template" in tokenizer_config.json or chat_template.jinja). Use a chat/instruct model, add a template, or choose the plain "User: ...\\nAssistant:" format.`,
    { file: path.join(modelDir, 'tokenizer_config.json') },
  );
}
