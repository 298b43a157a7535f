// Where an export may write. Exports used to write into any existing folder, silently replacing the files
// there; a relative outDir landed in the server's working folder; `outDir: /etc/passwd` answered
// `internal: EEXIST`. The folder is now absolute, new or empty unless the caller confirmed the overwrite,
// created and checked for writing here, and every filesystem refusal is a field error on outDir.
import { accessSync, constants, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { WorkbenchError } from '../src-shared/errors.ts';

const field = 'outDir';

function filesystemError(dir: string, error: NodeJS.ErrnoException): WorkbenchError {
  const reasons: Record<string, string> = {
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    EROFS: 'the disk is read-only',
    ENOSPC: 'the disk is full',
    ENOTDIR: 'a part of the path is a file, not a folder',
    EEXIST: 'a file of that name exists',
    ENAMETOOLONG: 'the path is too long',
    ELOOP: 'the path loops through symbolic links',
  };
  const reason = reasons[error.code ?? ''] ?? error.message;
  return new WorkbenchError('invalid_input', `Cannot export into ${dir}: ${reason}. Pick another folder.`, { field, path: dir, errno: error.code });
}

/** Checks and creates the export folder; returns it. Throws a WorkbenchError naming `outDir` for every refusal. */
export function prepareExportDir(outDir: string, overwrite: boolean): string {
  if (!path.isAbsolute(outDir)) {
    throw new WorkbenchError(
      'invalid_input',
      `The export folder must be an absolute path; "${outDir}" would be taken from the workbench's own working folder. Give the full path.`,
      { field },
    );
  }
  const dir = path.resolve(outDir);
  let existing;
  try {
    existing = statSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw filesystemError(dir, error as NodeJS.ErrnoException);
  }
  if (existing && !existing.isDirectory()) {
    throw new WorkbenchError('invalid_input', `${dir} is a file, not a folder. Pick a new or empty folder for the export.`, { field, path: dir });
  }
  if (existing && !overwrite) {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch (error) {
      throw filesystemError(dir, error as NodeJS.ErrnoException);
    }
    if (entries.length > 0) {
      throw new WorkbenchError(
        'conflict',
        `${dir} already holds ${entries.length} file${entries.length === 1 ? '' : 's'} (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}); the export would replace files there. Pick a new or empty folder, or confirm the overwrite.`,
        { field, path: dir, overwriteNeeded: true, entries: entries.length },
      );
    }
  }
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (error) {
    throw filesystemError(dir, error as NodeJS.ErrnoException);
  }
  return dir;
}
