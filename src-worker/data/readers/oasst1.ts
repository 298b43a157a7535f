// OpenAssistant Conversations (OASST1, Köpf et al. 2023). The release is a flat list of
// messages, one JSON object a line, linked into trees by parent_id; this reader rebuilds the
// trees and turns them into conversations (user / assistant turns) and prompt -> completion pairs.
// It also reads two derived shapes, a conversation a line ({"messages": [{role, content}]}) and
// first-turn pairs ({"prompt", "response"}), so exported subsets load the same way.
import { Fields, RowErrors, RowProblem, jsonlLines, readTextFile, throwEmpty } from './common.ts';

export interface OasstMessage {
  messageId: string;
  parentId: string | null;
  treeId: string;
  role: 'prompter' | 'assistant';
  text: string;
  /** Rank among siblings by human preference, 0 = best; null for prompter messages and unranked replies. */
  rank: number | null;
  deleted: boolean;
  /** null while a message is still under review. */
  reviewResult: boolean | null;
  createdDate: string;
  lang: string;
  line: number;
}

export interface ChatTurn {
  role: 'user' | 'assistant';
  content: string;
}

export interface Conversation {
  treeId: string;
  /** Alternating turns, starting with the user and ending with the assistant. */
  turns: ChatTurn[];
  /** Line of the conversation's last message (or of its row, for derived files). */
  line: number;
}

export interface ThreadOptions {
  /**
   * 'best' follows, from each root, the best-ranked reply at every step (one thread per tree);
   * 'all' yields every root-to-leaf path that ends on an assistant reply.
   */
  mode?: 'best' | 'all';
  /** Keep messages marked deleted (default false: a deleted message and its subtree are left out). */
  includeDeleted?: boolean;
  /** Leave out messages whose review failed (review_result false). Default false, as the release. */
  requireReview?: boolean;
}

export interface ConversationsResult {
  conversations: Conversation[];
  /** Messages that could not be placed in a conversation, with why; never dropped silently. */
  skipped: { line: number; reason: string }[];
}

const ROLES = ['prompter', 'assistant'] as const;

function parseMessage(value: unknown, line: number): OasstMessage {
  const f = new Fields(value);
  const parent = f.row['parent_id'];
  if (parent !== null && typeof parent !== 'string') throw new RowProblem('"parent_id" must be a string or null');
  const rank = f.row['rank'];
  if (rank !== null && rank !== undefined && (typeof rank !== 'number' || !Number.isInteger(rank) || rank < 0)) {
    throw new RowProblem('"rank" must be a non-negative integer or null');
  }
  const deleted = f.row['deleted'] ?? false;
  if (typeof deleted !== 'boolean') throw new RowProblem('"deleted" must be true or false');
  const review = f.row['review_result'] ?? null;
  if (review !== null && typeof review !== 'boolean') throw new RowProblem('"review_result" must be true, false or null');
  const created = f.row['created_date'] ?? '';
  return {
    messageId: f.str('message_id'),
    parentId: parent,
    treeId: f.str('message_tree_id'),
    role: f.oneOf('role', ROLES),
    text: f.str('text'),
    rank: rank === undefined ? null : rank,
    deleted,
    reviewResult: review,
    createdDate: typeof created === 'string' ? created : '',
    lang: typeof f.row['lang'] === 'string' ? (f.row['lang'] as string) : '',
    line,
  };
}

/** Parses OASST1 message JSONL; throws dataset_invalid listing every bad row (and repeated ids). */
export function parseOasstMessages(text: string, source = 'OASST1 file'): OasstMessage[] {
  const errors = new RowErrors();
  const messages: OasstMessage[] = [];
  const seen = new Map<string, number>();
  for (const item of jsonlLines(text)) {
    if ('error' in item) {
      errors.add(item.line, item.error);
      continue;
    }
    const message = errors.guard(item.line, () => parseMessage(item.value, item.line));
    if (!message) continue;
    const previous = seen.get(message.messageId);
    if (previous !== undefined) {
      errors.add(item.line, `message_id ${message.messageId} repeats line ${previous}`);
      continue;
    }
    seen.set(message.messageId, item.line);
    messages.push(message);
  }
  errors.throwIfAny(source);
  if (messages.length === 0) throwEmpty(source, 'one OASST1 message object per line');
  return messages;
}

/** Best sibling first: lowest rank, unranked last, then earliest; message id settles exact ties. */
function compareReplies(a: OasstMessage, b: OasstMessage): number {
  const ra = a.rank ?? Infinity;
  const rb = b.rank ?? Infinity;
  if (ra !== rb) return ra < rb ? -1 : 1;
  if (a.createdDate !== b.createdDate) return a.createdDate < b.createdDate ? -1 : 1;
  return a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0;
}

const toTurn = (m: OasstMessage): ChatTurn => ({ role: m.role === 'prompter' ? 'user' : 'assistant', content: m.text });

/** Drops trailing user turns so a thread ends on the assistant; null when nothing is left. */
function endOnAssistant(path: OasstMessage[]): OasstMessage[] | null {
  let end = path.length;
  while (end > 0 && path[end - 1]!.role !== 'assistant') end--;
  return end === 0 ? null : path.slice(0, end);
}

/** Rebuilds the message trees and lists their conversations. */
export function oasstConversations(messages: OasstMessage[], options: ThreadOptions = {}): ConversationsResult {
  const { mode = 'best', includeDeleted = false, requireReview = false } = options;
  const byId = new Map(messages.map((m) => [m.messageId, m]));
  const children = new Map<string, OasstMessage[]>();
  const skipped: ConversationsResult['skipped'] = [];
  const roots: OasstMessage[] = [];
  for (const m of messages) {
    if (m.parentId === null) {
      if (m.role !== 'prompter') skipped.push({ line: m.line, reason: `root message ${m.messageId} is an assistant reply` });
      else roots.push(m);
    } else if (!byId.has(m.parentId)) {
      // OASST1's per-language exports keep replies whose parent is in another language.
      skipped.push({ line: m.line, reason: `parent ${m.parentId} of message ${m.messageId} is not in the file` });
    } else {
      const list = children.get(m.parentId) ?? [];
      list.push(m);
      children.set(m.parentId, list);
    }
  }
  const kept = (m: OasstMessage) => (includeDeleted || !m.deleted) && (!requireReview || m.reviewResult !== false);
  const replies = (m: OasstMessage) => (children.get(m.messageId) ?? []).filter(kept).sort(compareReplies);

  const conversations: Conversation[] = [];
  const emit = (path: OasstMessage[]) => {
    const thread = endOnAssistant(path);
    if (thread) conversations.push({ treeId: thread[0]!.treeId, turns: thread.map(toTurn), line: thread[thread.length - 1]!.line });
  };
  for (const root of roots) {
    if (!kept(root)) continue;
    if (mode === 'best') {
      const path = [root];
      for (let next = replies(root)[0]; next; next = replies(next)[0]) path.push(next);
      emit(path);
    } else {
      // Iterative depth-first walk: trees can be deep enough to make recursion a needless risk.
      const stack: OasstMessage[][] = [[root]];
      while (stack.length > 0) {
        const path = stack.pop()!;
        const kids = replies(path[path.length - 1]!);
        if (kids.length === 0) {
          if (path[path.length - 1]!.role === 'assistant') emit(path);
        } else {
          for (let k = kids.length - 1; k >= 0; k--) stack.push([...path, kids[k]!]);
        }
      }
    }
  }
  // Descendants of a skipped message never reach a root; name them too.
  const reachable = new Set<string>();
  for (const root of roots) {
    const stack = [root];
    while (stack.length > 0) {
      const m = stack.pop()!;
      reachable.add(m.messageId);
      stack.push(...(children.get(m.messageId) ?? []));
    }
  }
  for (const m of messages) {
    if (!reachable.has(m.messageId) && m.parentId !== null && byId.has(m.parentId)) {
      skipped.push({ line: m.line, reason: `message ${m.messageId} descends from a message that is not in a tree` });
    }
  }
  skipped.sort((a, b) => a.line - b.line);
  return { conversations, skipped };
}

/** Every assistant turn of a conversation as (history, completion), the shape training consumes. */
export function conversationPairs(conversation: Conversation): { history: ChatTurn[]; completion: string; line: number }[] {
  const pairs: { history: ChatTurn[]; completion: string; line: number }[] = [];
  conversation.turns.forEach((turn, k) => {
    if (turn.role === 'assistant' && k > 0) pairs.push({ history: conversation.turns.slice(0, k), completion: turn.content, line: conversation.line });
  });
  return pairs;
}

function parseDerived(value: unknown, line: number): Conversation {
  const f = new Fields(value);
  const treeId = typeof f.row['message_tree_id'] === 'string' ? (f.row['message_tree_id'] as string) : String(line);
  if (f.has('messages')) {
    const turns = f.array('messages').map((m, k) => {
      const t = new Fields(m, `"messages"[${k}]`);
      const role = t.oneOf('role', ['user', 'assistant', 'prompter'] as const);
      return { role: role === 'prompter' ? 'user' : role, content: t.str('content') } satisfies ChatTurn;
    });
    if (turns.length < 2 || turns[0]!.role !== 'user' || turns[turns.length - 1]!.role !== 'assistant') {
      throw new RowProblem('"messages" must start with a user turn and end with an assistant turn');
    }
    turns.forEach((t, k) => {
      if (k > 0 && t.role === turns[k - 1]!.role) throw new RowProblem(`"messages"[${k}] repeats the ${t.role} role; turns must alternate`);
    });
    return { treeId, turns, line };
  }
  if (f.has('prompt') || f.has('response')) {
    return {
      treeId,
      turns: [
        { role: 'user', content: f.str('prompt') },
        { role: 'assistant', content: f.str('response') },
      ],
      line,
    };
  }
  throw new RowProblem(
    `unknown row shape with keys ${Object.keys(f.row).slice(0, 6).join(', ') || '(none)'}; expected an OASST1 message, {"messages": [...]} or {"prompt","response"}`,
  );
}

/**
 * Reads any of the three shapes. Message files go through the tree rebuild (with `options`);
 * derived files are already conversations and are returned row by row.
 */
export function parseOasst(text: string, source = 'OASST1 file', options: ThreadOptions = {}): ConversationsResult {
  // The first line that parses decides the shape, so one broken first line does not misread the file.
  let firstValue: unknown;
  for (const item of jsonlLines(text)) {
    if ('value' in item) {
      firstValue = item.value;
      break;
    }
  }
  if (firstValue !== null && typeof firstValue === 'object' && 'message_id' in firstValue) {
    return oasstConversations(parseOasstMessages(text, source), options);
  }
  const errors = new RowErrors();
  const conversations: Conversation[] = [];
  for (const item of jsonlLines(text)) {
    if ('error' in item) {
      errors.add(item.line, item.error);
      continue;
    }
    const conversation = errors.guard(item.line, () => parseDerived(item.value, item.line));
    if (conversation) conversations.push(conversation);
  }
  errors.throwIfAny(source);
  if (conversations.length === 0) throwEmpty(source, 'OASST1 messages or conversations, one JSON object per line');
  return { conversations, skipped: [] };
}

export async function readOasst(path: string, options: ThreadOptions = {}): Promise<ConversationsResult> {
  return parseOasst(await readTextFile(path), path, options);
}
