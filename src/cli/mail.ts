// `dnsproxy mail …`: `mail serve` runs the mail relay (its own process, sharing the data dir's
// SQLite file with the controller) until SIGTERM/SIGINT; each of its flags is also
// DNSPROXY_<NAME>. The admin commands (mail-admin.ts) talk to the controller's API.
import type { Command } from 'commander';
import { setFlagsFromString } from 'node:v8';
import { ConfigError, loadConfig } from '../config/load.js';
import { logger, setLogLevel } from '../log/index.js';
import { mailDnsProblem } from '../mail/resolver.js';
import { CliError } from './client.js';
import type { Globals } from './commands.js';
import { mailAdminCommands } from './mail-admin.js';
import { lockDataDirOrFail, runUntilSignal, SERVICE_UMASK, startFailed } from './signals.js';

interface MailServeFlags {
  config?: string;
  dataDir?: string;
  smtpPort?: string;
  submissionPort?: string;
  smtpsPort?: string;
  listenIp?: string;
  hostname?: string;
  logLevel?: string;
}

export function mailCommands(program: Command, g: Globals): void {
  const mail = program.command('mail').description('the mail relay: run it, and manage its accounts, providers, rules, DKIM keys and queue');
  mailAdminCommands(mail, g);
  mail
    .command('serve')
    .description('run the mail relay (SMTP submission + delivery queue) in the foreground')
    .option('--config <file>', 'JSON or YAML config file (env DNSPROXY_CONFIG)')
    .option('--data-dir <dir>', 'data directory shared with the controller (env DNSPROXY_DATA_DIR, default ./data)')
    .option('--smtp-port <port>', 'SMTP port (env DNSPROXY_SMTP_PORT, default 25)')
    .option('--submission-port <port>', 'submission port (env DNSPROXY_SUBMISSION_PORT, default 587)')
    .option('--smtps-port <port>', 'submission over implicit TLS, usually 465 (env DNSPROXY_SMTPS_PORT, default: none)')
    .option('--listen-ip <ip>', 'address the listeners listen on (env DNSPROXY_LISTEN_IP, default 127.0.0.1)')
    .option('--hostname <name>', 'name in the greeting, EHLO and certificate (env DNSPROXY_MAIL_HOSTNAME, default: this host)')
    .option('--log-level <level>', 'error|warn|info|debug (env DNSPROXY_LOG_LEVEL)')
    .action(async (f: MailServeFlags) => {
      process.umask(SERVICE_UMASK);
      let config;
      try {
        config = loadConfig({
          file: f.config,
          flags: { data_dir: f.dataDir, smtp_port: f.smtpPort, submission_port: f.submissionPort, smtps_port: f.smtpsPort, listen_ip: f.listenIp, mail_hostname: f.hostname, log_level: f.logLevel },
        });
      } catch (e) {
        if (e instanceof ConfigError) throw new CliError(e.lines.join('\n'), 2);
        throw e;
      }
      const dnsProblem = mailDnsProblem(config);
      if (dnsProblem) throw new CliError(dnsProblem, 2);
      setLogLevel(config.log_level);
      // bin/dnsproxy's --optimize-for-size serves the controller's memory target. In the relay its
      // memory-reducing full GCs throw optimized code away, to be compiled again under load (about
      // 3x the compiler time while accepting a burst; docs/benchmarks.md, "Mail"). V8 reads the
      // flag at every GC, and the queue threads started later share it.
      setFlagsFromString('--no-optimize-for-size');
      const log = logger('mail.serve');
      const unlock = await lockDataDirOrFail(config.data_dir, 'mail');
      await runUntilSignal(async () => {
        const { MailRelay, relayOptions } = await import('../mail/index.js'); // client commands never load the relay
        const relay = new MailRelay({
          ...relayOptions(config),
          onFatal: (e) => {
            log.error('the relay cannot queue or deliver any more; exiting so that supervisord restarts it', { error: e.message });
            process.exit(1);
          },
        });
        await relay.start().catch((e: unknown) => {
          throw startFailed(e, '--smtp-port/--submission-port/--smtps-port', 'DNSPROXY_SMTP_PORT/DNSPROXY_SUBMISSION_PORT/DNSPROXY_SMTPS_PORT');
        });
        return (signal) => {
          log.info('stopping: open sessions and deliveries in flight finish first', { signal });
          return relay.stop().finally(unlock);
        };
      });
    });
}
