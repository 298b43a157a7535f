// `serve` opens the browser on a small HTML file that forwards to the workbench's URL, instead of passing
// the URL itself to xdg-open / open / start: a URL given on a command line, token and all, is readable by
// every user of the machine in `ps` while the opener runs. The file sits in a folder only the user can read
// (the data folder's `launch/`, not /tmp, which sandboxed browsers such as snaps cannot read), and is
// removed when the server stops.
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

function escapeAttribute(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function writeLaunchPage(dataDir: string, url: string): { file: string; remove(): void } {
  const dir = path.join(dataDir, 'launch');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const file = path.join(dir, `open-${process.pid}.html`);
  const href = escapeAttribute(url);
  writeFileSync(
    file,
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${href}">` +
      `<title>Opening LoRA Workbench</title></head><body><p>Opening <a href="${href}">LoRA Workbench</a>…</p></body></html>\n`,
    { mode: 0o600 },
  );
  return { file, remove: () => rmSync(file, { force: true }) };
}
