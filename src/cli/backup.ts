// `dnsproxy backup <file>` (through the API, while serving) and `dnsproxy restore <file>` (on the
// data dir itself, with the stack stopped: like serve, not a client of the API).
import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { ConfigError, loadConfig } from '../config/load.js';
import { BackupError, restoreDb } from '../store/backup.js';
import { DataDirLocked } from '../store/lock.js';
import { FILE_MODE } from '../store/files.js';
import { CliError, download } from './client.js';
import type { Globals } from './commands.js';
import { printJson } from './output.js';

export function backupCommands(program: Command, g: Globals): void {
  program
    .command('backup')
    .description('save a consistent copy of the database, taken while serving (admin token; the file holds every secret: it is written owner-only)')
    .argument('<file>', 'where to write it (must not exist)')
    .action(async (file: string) => {
      const bytes = await download(g.target(), '/api/v1/backup');
      try {
        writeFileSync(file, bytes, { mode: FILE_MODE, flag: 'wx' });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new CliError(code === 'EEXIST' ? `${file} exists: choose a new name (a backup never overwrites a file)` : `cannot write ${file}: ${(e as Error).message}`);
      }
      if (g.json()) printJson({ file, bytes: bytes.length });
      else console.log(`backup written to ${file} (${bytes.length} bytes); restore it with: dnsproxy restore ${file}`);
    });

  program
    .command('restore')
    .description('replace the database with a backup; the stack must be stopped (dnsproxy stop). The current database is kept beside it')
    .argument('<file>', 'a file written by dnsproxy backup')
    .option('--data-dir <dir>', 'data directory (env DNSPROXY_DATA_DIR, default ./data)')
    .option('--config <file>', 'config file (env DNSPROXY_CONFIG)')
    .action((file: string, o: { dataDir?: string; config?: string }) => {
      let dataDir: string;
      try {
        dataDir = loadConfig({ file: o.config, flags: { data_dir: o.dataDir } }).data_dir;
      } catch (e) {
        if (e instanceof ConfigError) throw new CliError(e.lines.join('\n'), 2);
        throw e;
      }
      try {
        const { kept, version } = restoreDb(dataDir, file);
        if (g.json()) printJson({ restored: file, data_dir: dataDir, schema: version, kept });
        else console.log(`restored ${file} into ${dataDir} (schema ${version})${kept ? `; the database it replaced is kept as ${kept}` : ''}. Start the stack again.`);
      } catch (e) {
        if (e instanceof DataDirLocked) throw new CliError(`${e.message}: stop it first (dnsproxy stop), then restore`);
        if (e instanceof BackupError) throw new CliError(`${e.message}; nothing was changed`);
        throw e;
      }
    });
}
