// Dockerfile.all checked against the repo without building it (image.test.ts builds and runs it
// with podman where podman can run).
// Every local COPY source exists and survives .dockerignore, every script a RUN names exists, the
// runtime stage runs supervisord with a copy of the top-level supervisord.conf, the files that
// config starts are in the image, every %(ENV_X)s it reads gets a value from the Dockerfile's
// ENV and from scripts/run.sh, and the stages' Node image is the major scripts/lib.sh pins.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, relative } from 'node:path';
import { APP_DIR } from '../helpers/supervisor.js';

// ---- a Dockerfile parser: enough of the reference for this file -----------------------------

interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY, … */
  op: string;
  /** Everything after the keyword, continuation lines joined with a space. */
  args: string;
  /** 1-based line of the keyword. */
  line: number;
}

interface Stage {
  image: string;
  name: string | null;
  index: number;
  instructions: Instruction[];
}

/** Instructions with `\` continuations joined; comment lines (also inside a continuation) and blank lines dropped. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let current: { line: number; parts: string[] } | null = null;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (/^\s*#/.test(line)) return;
    if (!current && !line.trim()) return;
    const continues = /\\\s*$/.test(line);
    const body = continues ? line.replace(/\\\s*$/, '') : line;
    current ??= { line: i + 1, parts: [] };
    current.parts.push(body.trim());
    if (continues) return;
    const joined = current.parts.filter(Boolean).join(' ');
    const m = /^(\S+)\s*(.*)$/.exec(joined);
    if (m?.[1]) out.push({ op: m[1].toUpperCase(), args: m[2] ?? '', line: current.line });
    current = null;
  });
  return out;
}

/** Splits instructions into build stages at each FROM (`FROM image [AS name]`). */
function stages(instructions: Instruction[]): Stage[] {
  const out: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      out.push({ image: m?.[1] ?? '', name: m?.[2] ?? null, index: out.length, instructions: [] });
    } else out.at(-1)?.instructions.push(ins);
  }
  return out;
}

/** Words of an exec-form (`["a", "b"]`) or shell-form argument list. */
function words(args: string): string[] {
  const t = args.trim();
  if (t.startsWith('[')) return JSON.parse(t) as string[];
  return t.split(/\s+/).filter(Boolean);
}

interface Copy {
  from: string | null;
  sources: string[];
  dest: string;
  line: number;
}

/** COPY/ADD with their flags (`--from=`, `--chown=`, …) taken off. */
function copies(stage: Stage): Copy[] {
  return stage.instructions
    .filter((i) => i.op === 'COPY' || i.op === 'ADD')
    .map((i) => {
      let rest = i.args.trim();
      let from: string | null = null;
      for (let m = /^--([\w-]+)(?:=(\S+))?\s+/.exec(rest); m; m = /^--([\w-]+)(?:=(\S+))?\s+/.exec(rest)) {
        if (m[1] === 'from') from = m[2] ?? null;
        rest = rest.slice(m[0].length);
      }
      const w = words(rest);
      return { from, sources: w.slice(0, -1), dest: w.at(-1) ?? '', line: i.line };
    });
}

/** `ENV k=v k2="v 2"` and the legacy `ENV k v`, in order. */
function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of stage.instructions.filter((x) => x.op === 'ENV')) {
    if (!/^\S+=/.test(i.args)) {
      const m = /^(\S+)\s+(.*)$/.exec(i.args);
      if (m?.[1]) env[m[1]] = m[2] ?? '';
      continue;
    }
    for (const m of i.args.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g)) env[m[1]!] = (m[2] ?? '').replace(/^(["'])(.*)\1$/, '$2');
  }
  return env;
}

// ---- .dockerignore (Go filepath.Match per path segment, `**`, `!` exceptions, last match wins) ----

function patternRegex(pattern: string): RegExp {
  let re = '';
  const p = posix.normalize(pattern.replace(/^\/+/, '')).replace(/\/$/, '');
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*' && p[i + 1] === '*') {
      re += p[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += p[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Whether .dockerignore keeps `path` (relative to the context) out: it or a parent dir matches. */
function ignored(patterns: string[], path: string): boolean {
  const rules = patterns.map((l) => l.trim()).filter((l) => l && !l.startsWith('#')).map((l) => ({ negate: l.startsWith('!'), re: patternRegex(l.replace(/^!/, '')) }));
  const parts = posix.normalize(path).split('/');
  let out = false;
  for (const rule of rules) {
    for (let n = 1; n <= parts.length; n++) if (rule.re.test(parts.slice(0, n).join('/'))) out = !rule.negate;
  }
  return out;
}

// ---- the checks -----------------------------------------------------------------------------------

const read = (p: string) => readFileSync(join(APP_DIR, p), 'utf8');
const filesUnder = (dir: string): string[] =>
  readdirSync(join(APP_DIR, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));

/** The `%(ENV_X)s` names supervisord expands (comment lines are not read by supervisord). */
function supervisorEnvNames(conf: string): string[] {
  const active = conf.split('\n').filter((l) => !/^\s*[;#]/.test(l)).join('\n');
  return [...new Set([...active.matchAll(/%\(ENV_(\w+)\)s/g)].map((m) => m[1]!))].sort();
}

describe('deploy: Dockerfile.all against the repo', () => {
  const text = read('Dockerfile.all');
  const all = stages(parseDockerfile(text));
  const runtime = all.at(-1)!;
  /** The stage a FROM scratch stage copies its whole file system from (`COPY --from=<stage> / /` first). */
  const rootSource = (st: Stage): Stage | undefined => {
    const first = copies(st)[0];
    if (st.image !== 'scratch' || !first || first.from === null || first.sources.join(' ') !== '/' || first.dest !== '/') return undefined;
    return all.find((s) => s.name === first.from || String(s.index) === first.from);
  };
  /** The runtime stage and the stage its file system comes from, when it is FROM scratch. */
  const runtimeStages = [rootSource(runtime), runtime].filter((x): x is Stage => x !== undefined);
  const dockerignore = read('.dockerignore').split('\n');
  const conf = read('supervisord.conf');

  describe('the parser', () => {
    it('joins continuations, drops comment lines inside them, reads FROM … AS and COPY --from', () => {
      const ins = parseDockerfile('FROM a:1 AS build\nRUN one \\\n# note\n  two \\\n  three\n\nFROM b\nCOPY --from=build --chown=x:y /app/dist ./dist\nCOPY ["a b", "c", "/d/"]\nENV A=1 B="two words"\nENV C 3\n');
      expect(ins.map((i) => `${i.line} ${i.op} ${i.args}`)).to.deep.equal([
        '1 FROM a:1 AS build',
        '2 RUN one two three',
        '7 FROM b',
        '8 COPY --from=build --chown=x:y /app/dist ./dist',
        '9 COPY ["a b", "c", "/d/"]',
        '10 ENV A=1 B="two words"',
        '11 ENV C 3',
      ]);
      const st = stages(ins);
      expect(st.map((s) => [s.image, s.name])).to.deep.equal([['a:1', 'build'], ['b', null]]);
      expect(copies(st[1]!)).to.deep.equal([
        { from: 'build', sources: ['/app/dist'], dest: './dist', line: 8 },
        { from: null, sources: ['a b', 'c'], dest: '/d/', line: 9 },
      ]);
      expect(envOf(st[1]!)).to.deep.equal({ A: '1', B: 'two words', C: '3' });
    });

    const table: [string[], string, boolean][] = [
      [['node_modules'], 'node_modules/x/index.js', true],
      [['*.log'], 'a.log', true],
      [['*.log'], 'logs/a.log', false],
      [['**/*.log'], 'logs/a.log', true],
      [['docs', '!docs/keep.md'], 'docs/keep.md', false],
      [['docs', '!docs/keep.md'], 'docs/other.md', true],
      [['/data'], 'data/db.sqlite', true],
      [['test'], 'templates/Caddyfile.hbs', false],
    ];
    for (const [patterns, path, expected] of table)
      it(`.dockerignore ${JSON.stringify(patterns)} ${expected ? 'excludes' : 'keeps'} ${path}`, () => expect(ignored(patterns, path)).to.equal(expected));
  });

  it('has a build stage and a runtime stage; every COPY --from names an earlier stage', () => {
    expect(all.length).to.be.at.least(2);
    for (const st of all)
      for (const c of copies(st).filter((x) => x.from !== null)) {
        const source = all.find((s) => s.name === c.from || String(s.index) === c.from);
        expect(source, `line ${c.line}: --from=${c.from}`).not.to.equal(undefined);
        expect(source!.index, `line ${c.line}: --from=${c.from} must be an earlier stage`).to.be.below(st.index);
      }
  });

  it('every stage builds on node:<major>-bookworm-slim, the major scripts/lib.sh pins, which package.json "engines" allows (or on scratch, from such a stage\'s whole file system)', () => {
    const lib = read('scripts/lib.sh');
    const pin = /^NODE_PIN=(\d+)\.\d+\.\d+$/m.exec(lib)?.[1];
    const min = /^NODE_MIN_MAJOR=(\d+)$/m.exec(lib)?.[1];
    expect(pin, 'scripts/lib.sh: NODE_PIN=<major>.<minor>.<patch>').to.be.a('string');
    expect(min, 'scripts/lib.sh: NODE_MIN_MAJOR=<major>').to.be.a('string');
    for (const st of all) {
      if (st.image === 'scratch') {
        const root = rootSource(st);
        expect(root, `stage ${st.name ?? st.index}: FROM scratch must start with COPY --from=<stage> / /`).not.to.equal(undefined);
        expect(root!.image, `stage ${st.name ?? st.index}: its / comes from`).to.equal(`node:${pin}-bookworm-slim`);
      } else expect(st.image, `stage ${st.name ?? st.index}`).to.equal(`node:${pin}-bookworm-slim`);
    }
    expect((JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node).to.equal(`>=${min}`);
    expect(Number(pin)).to.be.at.least(Number(min));
  });

  it('every local COPY source exists in the repo and is not excluded by .dockerignore', () => {
    const local = all.flatMap((st) => copies(st).filter((c) => c.from === null));
    expect(local.length).to.be.greaterThan(0);
    for (const c of local)
      for (const src of c.sources) {
        expect(existsSync(join(APP_DIR, src)), `line ${c.line}: COPY ${src}: not in the repo`).to.equal(true);
        expect(ignored(dockerignore, src), `line ${c.line}: COPY ${src}: excluded by .dockerignore`).to.equal(false);
        if (statSync(join(APP_DIR, src)).isDirectory()) {
          const kept = filesUnder(src).filter((f) => !ignored(dockerignore, f));
          expect(kept, `line ${c.line}: COPY ${src}: .dockerignore leaves nothing of it`).not.to.deep.equal([]);
        }
      }
  });

  it('every script a RUN names exists: npm run targets in package.json, shell scripts in the repo and copied first', () => {
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    for (const st of all) {
      const copied = copies(st).filter((c) => c.from === null).flatMap((c) => c.sources);
      for (const run of st.instructions.filter((i) => i.op === 'RUN')) {
        for (const m of run.args.matchAll(/\bnpm run(?:-script)?\s+(?:--\S+\s+)*([\w:-]+)/g)) expect(pkg.scripts, `line ${run.line}: npm run ${m[1]}`).to.have.property(m[1]!);
        for (const m of run.args.matchAll(/(?:^|[\s;&|])(?:\.\/)?((?:scripts|bin)\/[\w./-]+)/g)) {
          const script = m[1]!;
          expect(existsSync(join(APP_DIR, script)), `line ${run.line}: ${script} is not in the repo`).to.equal(true);
          expect(copied.some((src) => script === src || script.startsWith(`${src.replace(/\/$/, '')}/`)), `line ${run.line}: ${script} is not copied into stage ${st.name ?? st.index} before it runs`).to.equal(true);
        }
      }
    }
  });

  it('the runtime stage runs supervisord on /etc/supervisord.conf, a COPY of the top-level supervisord.conf', () => {
    const cmd = runtime.instructions.filter((i) => i.op === 'CMD').at(-1);
    expect(cmd, 'CMD').not.to.equal(undefined);
    const argv = words(cmd!.args);
    expect(argv[0]).to.equal('supervisord');
    expect(argv.slice(1).join(' ')).to.match(/(?:^|\s)-c \/etc\/supervisord\.conf(?:\s|$)/);
    expect(argv, 'supervisord must stay in the foreground as PID 1').to.include('-n');
    const confCopy = copies(runtime).find((c) => c.dest === '/etc/supervisord.conf');
    expect(confCopy, 'COPY … /etc/supervisord.conf').to.deep.include({ from: null, sources: ['supervisord.conf'] });
  });

  it('declares EXPOSE (DNS udp+tcp, HTTP, HTTPS, SMTP, submission, implicit-TLS submission, API), VOLUME /data and a HEALTHCHECK on /health', () => {
    const exposed = runtime.instructions.filter((i) => i.op === 'EXPOSE').flatMap((i) => words(i.args));
    expect(exposed).to.include.members(['53/udp', '53/tcp', '80', '443', '25', '587', '465', '8080']);
    const volumes = runtime.instructions.filter((i) => i.op === 'VOLUME').flatMap((i) => words(i.args));
    expect(volumes).to.include('/data');
    const health = runtime.instructions.find((i) => i.op === 'HEALTHCHECK');
    expect(health?.args).to.match(/\bCMD\b/);
    // `dnsproxy status` GETs /health and checks the programs' states.
    expect(health?.args).to.match(/dnsproxy status|\/health/);
    expect(runtime.instructions.some((i) => i.op === 'USER' && !/^(root|0)(:|$)/.test(i.args.trim())), 'a non-root USER').to.equal(true);
  });

  it('every %(ENV_X)s in supervisord.conf gets a value from the Dockerfile ENV and from scripts/run.sh', () => {
    const names = supervisorEnvNames(conf);
    expect(names).to.include.members(['DNSPROXY_APP_DIR', 'DNSPROXY_DATA_DIR', 'DNSPROXY_RUN_DIR']);
    const env = envOf(runtime);
    const runSh = read('scripts/run.sh');
    for (const name of names) {
      expect(env, `Dockerfile.all ENV ${name}`).to.have.property(name);
      expect(env[name], `Dockerfile.all ENV ${name}`).not.to.equal('');
      expect(runSh, `scripts/run.sh: export ${name}=…`).to.match(new RegExp(`^export ${name}=\\S`, 'm'));
    }
    expect(env).to.include({ DNSPROXY_DATA_DIR: '/data', DNSPROXY_LISTEN_IP: '0.0.0.0', DNSPROXY_DNS_PORT: '53', DNSPROXY_HTTP_PORT: '80', DNSPROXY_HTTPS_PORT: '443' });
  });

  it("Caddy's admin API is a unix socket in the run dir, made owner-only, in the image and in scripts/run.sh", () => {
    const env = envOf(runtime);
    expect(env.DNSPROXY_CADDY_ADMIN).to.equal(`unix/${env.DNSPROXY_RUN_DIR}/caddy-admin.sock`);
    const runs = runtimeStages.flatMap((st) => st.instructions).filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    expect(runs, 'the image makes its run dir 0700').to.match(new RegExp(`chmod 0?700 (?:/\\S+ )*${env.DNSPROXY_RUN_DIR}(?:\\s|$)`));
    const runSh = read('scripts/run.sh');
    expect(runSh).to.include('export DNSPROXY_CADDY_ADMIN="${DNSPROXY_CADDY_ADMIN:-unix/$DNSPROXY_RUN_DIR/caddy-admin.sock}"');
    // run.sh sets it after making the run dir absolute, so Caddy and the controller get the same path.
    expect(runSh.indexOf('export DNSPROXY_CADDY_ADMIN=')).to.be.greaterThan(runSh.indexOf('DNSPROXY_RUN_DIR="$PWD/$DNSPROXY_RUN_DIR"'));
  });

  it('the files supervisord.conf starts from DNSPROXY_APP_DIR are copied there in the runtime stage', () => {
    const appDir = envOf(runtime).DNSPROXY_APP_DIR!;
    const workdir = runtime.instructions.filter((i) => i.op === 'WORKDIR').at(-1)?.args.trim() ?? '/';
    const started = [...conf.split('\n').filter((l) => /^command\s*=/.test(l)).join('\n').matchAll(/%\(ENV_DNSPROXY_APP_DIR\)s\/(\S+)/g)].map((m) => m[1]!);
    expect(started).to.include.members(['scripts/caddy-run.sh', 'bin/dnsproxy']);
    for (const file of started) {
      const inImage = posix.join(appDir, file);
      const copy = copies(runtime).find((c) => {
        const dest = posix.resolve(workdir, c.dest);
        return dest === inImage || inImage.startsWith(`${dest.replace(/\/$/, '')}/`);
      });
      expect(copy, `${inImage} (supervisord.conf) is not copied into the image`).not.to.equal(undefined);
      if (copy!.from === null) {
        const dest = posix.resolve(workdir, copy!.dest);
        const rel = relative(dest, inImage);
        // COPY a b ./dir/ puts each file source under its own name; COPY dir ./dir copies the tree.
        const named = copy!.sources.find((x) => posix.basename(x) === rel && !statSync(join(APP_DIR, x)).isDirectory());
        const src = dest === inImage ? copy!.sources[0]! : (named ?? join(copy!.sources[0]!, rel));
        expect(existsSync(join(APP_DIR, src)), `${src} (copied to ${inImage})`).to.equal(true);
      }
    }
  });

  it('the ENTRYPOINT is scripts/container-start.sh, copied into the image; it checks the data dir, then runs the CMD', () => {
    const entry = runtime.instructions.filter((i) => i.op === 'ENTRYPOINT').at(-1);
    expect(entry, 'ENTRYPOINT').not.to.equal(undefined);
    const argv = words(entry!.args);
    expect(argv).to.deep.equal([`${envOf(runtime).DNSPROXY_APP_DIR}/scripts/container-start.sh`]);
    expect(copies(runtime).some((c) => c.from === null && c.sources.includes('scripts/container-start.sh'))).to.equal(true);
    expect(statSync(join(APP_DIR, 'scripts/container-start.sh')).mode & 0o111, 'executable').not.to.equal(0);
    expect(read('scripts/container-start.sh')).to.match(/^exec "\$@"$/m);
  });

  it('pins the service user\'s uid and gid (a bind mount can be chowned before the first start), and the build stage builds against the image\'s Node headers', () => {
    const runs = runtimeStages.flatMap((st) => st.instructions).filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
    expect(runs).to.match(/useradd [^&]*--uid 10001 /);
    expect(runs).to.match(/groupadd [^&]*--gid 10001 /);
    expect(read('docs/deployment.md')).to.include('chown -R 10001:10001');
    expect(envOf(all[0]!)).to.include({ npm_config_nodedir: '/usr/local' });
  });

  it('every stage installs only packages Debian 12 has (checked with apt-cache when this host is bookworm)', function () {
    const osRelease = existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '';
    if (!/VERSION_CODENAME=bookworm/.test(osRelease) || spawnSync('apt-cache', ['--version']).status !== 0) return this.skip();
    if (!/500 \S+/.test(spawnSync('apt-cache', ['policy']).stdout.toString())) return this.skip(); // no package lists on this host
    expect(all[0]!.image).to.match(/bookworm/);
    expect(runtimeStages[0]!.image).to.match(/bookworm/);
    const installs = all.flatMap((st) => st.instructions).filter((i) => i.op === 'RUN').flatMap((i) => [...i.args.matchAll(/apt-get install ((?:-\S+\s+)*)([\w.+\s-]+?)(?:&&|$)/g)].flatMap((m) => m[2]!.split(/\s+/).filter((w) => w && !w.startsWith('-'))));
    expect(installs).to.include.members(['caddy', 'supervisor', 'libcap2-bin']);
    // One apt-cache call (each costs ~0.5 s): "pkg:\n  Installed: …\n  Candidate: 1.2-3" per known package.
    const policy = spawnSync('apt-cache', ['policy', ...installs]).stdout.toString();
    const candidates = Object.fromEntries([...policy.matchAll(/^(\S+):\n(?:\s+Installed:.*\n)?\s+Candidate: (\S+)/gm)].map((m) => [m[1], m[2]]));
    for (const pkg of installs) expect(candidates[pkg], `apt-cache policy ${pkg}: no candidate in this host's (bookworm) lists`).to.be.a('string').and.not.equal('(none)');
  });
});
