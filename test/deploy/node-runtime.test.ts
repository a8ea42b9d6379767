// scripts/lib.sh picks the Node.js the scripts run on and keeps node_modules built for it:
// the machine's own node when it is new enough (nothing downloaded), otherwise the pinned Node
// from .runtime/ first on PATH with npm_config_nodedir on its headers; a tarball whose sha512 is
// not the pinned one is refused; node_modules is reinstalled when the native-module ABI changes.
// lib.sh is copied into a temp checkout and run by bash with stand-ins for node and npm first on
// PATH (a real `npm ci` compiles better-sqlite3 for a minute and a half; the real install path
// is what scripts/test.sh itself goes through).
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { APP_DIR } from '../helpers/supervisor.js';
import { tempDir } from '../helpers/tmp.js';

const LIB = readFileSync(join(APP_DIR, 'scripts/lib.sh'), 'utf8');
const PIN = /^NODE_PIN=(\S+)$/m.exec(LIB)?.[1] ?? '';
const MIN_MAJOR = Number(/^NODE_MIN_MAJOR=(\d+)$/m.exec(LIB)?.[1]);
const ARCH = process.arch === 'x64' || process.arch === 'arm64' ? process.arch : null;

/** A stand-in node: answers --version and the two `node -p` questions lib.sh asks. */
function fakeNode(path: string, version: string, abi: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(
    path,
    `#!/bin/bash
case "$1 $2" in
  --version*) echo v${version} ;;
  *versions.modules*) echo linux-${ARCH}-${abi} ;;
  *versions.node*) echo ${version} ;;
  *) exit 9 ;;
esac
`,
  );
  chmodSync(path, 0o755);
}

interface Checkout {
  dir: string;
  bin: string;
  log: string;
  cleanup: () => void;
}

/**
 * A temp checkout holding scripts/lib.sh, and a bin dir with the machine's stand-in node at
 * `machineNode` (null: none), an npm that logs its arguments (and for `pack` writes a tarball that
 * is not the pinned one), and no-op python3/make/g++ so nothing is installed with apt-get.
 */
function checkout(machineNode: string | null): Checkout {
  const tmp = tempDir('dnsproxy-node-runtime-');
  mkdirSync(join(tmp.dir, 'scripts'));
  copyFileSync(join(APP_DIR, 'scripts/lib.sh'), join(tmp.dir, 'scripts/lib.sh'));
  const bin = join(tmp.dir, 'machine-bin');
  mkdirSync(bin);
  const log = join(tmp.dir, 'npm.log');
  if (machineNode) fakeNode(join(bin, 'node'), machineNode, machineNode.startsWith('20.') ? '115' : '127');
  const npm = `#!/bin/bash
echo "$*" >>${JSON.stringify(log)}
if [ "$1" = pack ]; then echo 'not node' >"$4/x.tgz"; echo x.tgz; fi
`;
  writeFileSync(join(bin, 'npm'), npm);
  chmodSync(join(bin, 'npm'), 0o755);
  for (const tool of ['python3', 'make', 'g++']) {
    writeFileSync(join(bin, tool), '#!/bin/sh\n');
    chmodSync(join(bin, tool), 0o755);
  }
  return { dir: tmp.dir, bin, log, cleanup: tmp.cleanup };
}

/** Runs `script` after sourcing the checkout's lib.sh, in `cwd`, with the stand-ins first on PATH. */
function bash(c: Checkout, script: string, cwd = c.dir) {
  const env = { HOME: c.dir, PATH: `${c.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` };
  const r = spawnSync('bash', ['-c', `set -euo pipefail; . ${JSON.stringify(join(c.dir, 'scripts/lib.sh'))}; ${script}`], { cwd, env, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, npm: existsSync(c.log) ? readFileSync(c.log, 'utf8').trim().split('\n') : [] };
}

const SHOW = 'echo "node=$(node --version) path1=${PATH%%:*} nodedir=${npm_config_nodedir:-}"';

describe('deploy: the Node.js runtime of the scripts (scripts/lib.sh)', function () {
  before(function () {
    if (!ARCH) this.skip();
  });

  it('pins a Node at or above the minimum major, with a sha512 for x64 and arm64', () => {
    expect(PIN).to.match(/^\d+\.\d+\.\d+$/);
    expect(Number(PIN.split('.')[0])).to.be.at.least(MIN_MAJOR);
    expect(LIB).to.match(/^NODE_SHA512_x64=[0-9a-f]{128}$/m);
    expect(LIB).to.match(/^NODE_SHA512_arm64=[0-9a-f]{128}$/m);
  });

  it(`a machine whose node is >= the minimum uses it: PATH unchanged, nothing downloaded`, () => {
    const c = checkout(`${MIN_MAJOR}.1.0`);
    try {
      const r = bash(c, `need_node; ${SHOW}`);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout.trim()).to.equal(`node=v${MIN_MAJOR}.1.0 path1=${c.bin} nodedir=`);
      expect(r.npm).to.deep.equal([]);
      expect(existsSync(join(c.dir, '.runtime'))).to.equal(false);
    } finally {
      c.cleanup();
    }
  });

  it('a machine on Node 20 gets the pinned node of .runtime/ first on PATH and nodedir on its headers; nothing downloaded when it is there', () => {
    const c = checkout('20.20.2');
    try {
      const dir = join(c.dir, `.runtime/node-v${PIN}-linux-${ARCH}`);
      fakeNode(join(dir, 'bin/node'), PIN, '137');
      const r = bash(c, `need_node; ${SHOW}; need_node; echo "again path=$PATH"`);
      expect(r.code, r.stderr).to.equal(0);
      const [first, again] = r.stdout.trim().split('\n');
      expect(first).to.equal(`node=v${PIN} path1=${dir}/bin nodedir=${dir}`);
      // A second call (run.sh started by a script that already ran need_node) adds nothing.
      expect(again).to.equal(`again path=${dir}/bin:${c.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`);
      expect(r.npm).to.deep.equal([]);
      expect(r.stderr).to.equal('');
    } finally {
      c.cleanup();
    }
  });

  it('refuses a downloaded tarball whose sha512 is not the pinned one, and leaves nothing behind', () => {
    const c = checkout('20.20.2');
    try {
      const r = bash(c, `need_node; ${SHOW}`);
      expect(r.code).to.equal(1);
      expect(r.stdout).to.equal('');
      expect(r.stderr).to.include(`installing Node ${PIN} (npm package node-linux-${ARCH}) into .runtime/node-v${PIN}-linux-${ARCH}`);
      expect(r.stderr).to.include(`dnsproxy: node-linux-${ARCH}@${PIN}: the tarball's sha512 is not the pinned one (scripts/lib.sh); not installing it`);
      expect(r.npm).to.have.length(1);
      expect(r.npm[0]).to.match(new RegExp(`^pack node-linux-${ARCH}@${PIN.replace(/\./g, '\\.')} --pack-destination \\S+ --silent$`));
      expect(readdirSync(join(c.dir, '.runtime'))).to.deep.equal([]);
    } finally {
      c.cleanup();
    }
  });

  describe('need_npm', () => {
    /** A project dir with a lockfile and an installed node_modules whose ABI mark is `mark` (null: none). */
    function project(c: Checkout, mark: string | null): string {
      const dir = join(c.dir, 'project');
      mkdirSync(join(dir, 'node_modules'), { recursive: true });
      writeFileSync(join(dir, 'package-lock.json'), '{}');
      writeFileSync(join(dir, 'node_modules/.package-lock.json'), '{}');
      // The lockfile older than the install, both in the past (a rewrite of the lockfile is newer).
      const at = (ago: number) => new Date(Date.now() - ago);
      utimesSync(join(dir, 'package-lock.json'), at(120_000), at(120_000));
      utimesSync(join(dir, 'node_modules/.package-lock.json'), at(60_000), at(60_000));
      if (mark !== null) writeFileSync(join(dir, 'node_modules/.dnsproxy-abi'), `${mark}\n`);
      return dir;
    }

    it('reinstalls when node_modules was built for another ABI (Node 20 → 24) and records the new one; not again after that', () => {
      const c = checkout(`${MIN_MAJOR + 2}.0.0`);
      try {
        const dir = project(c, `linux-${ARCH}-115`);
        const r = bash(c, 'need_npm', dir);
        expect(r.code, r.stderr).to.equal(0);
        expect(r.stderr).to.include(`dnsproxy: npm ci (node_modules was built for linux-${ARCH}-115, node v${MIN_MAJOR + 2}.0.0 is linux-${ARCH}-127)`);
        expect(r.npm).to.deep.equal(['ci --no-audit --no-fund', 'run --silent build']);
        expect(readFileSync(join(dir, 'node_modules/.dnsproxy-abi'), 'utf8')).to.equal(`linux-${ARCH}-127\n`);
        const again = bash(c, 'need_npm', dir);
        expect(again.npm.slice(2)).to.deep.equal([]);
      } finally {
        c.cleanup();
      }
    });

    it('reinstalls a node_modules without an ABI mark (installed before marks existed)', () => {
      const c = checkout(`${MIN_MAJOR}.0.0`);
      try {
        const r = bash(c, 'need_npm', project(c, null));
        expect(r.stderr).to.include('npm ci (node_modules was built for an unrecorded runtime');
        expect(r.npm).to.deep.equal(['ci --no-audit --no-fund', 'run --silent build']);
      } finally {
        c.cleanup();
      }
    });

    it('only builds when the ABI matches and the lockfile is unchanged; reinstalls when the lockfile is newer', () => {
      const c = checkout(`${MIN_MAJOR}.0.0`);
      try {
        const dir = project(c, `linux-${ARCH}-127`);
        expect(bash(c, 'need_npm', dir).npm).to.deep.equal(['run --silent build']);
        writeFileSync(join(dir, 'package-lock.json'), '{"changed":true}');
        const r = bash(c, 'need_npm', dir);
        expect(r.stderr).to.include('npm ci (package-lock.json changed)');
        expect(r.npm.slice(1)).to.deep.equal(['ci --no-audit --no-fund', 'run --silent build']);
      } finally {
        c.cleanup();
      }
    });

    it('builds only when src/, tsconfig.json or the lockfile changed since the last build (stamp in dist/)', () => {
      const c = checkout(`${MIN_MAJOR}.0.0`);
      try {
        const dir = project(c, `linux-${ARCH}-127`);
        mkdirSync(join(dir, 'src/api'), { recursive: true });
        const past = new Date(Date.now() - 300_000);
        for (const f of ['src/api/app.ts', 'src/main.ts', 'tsconfig.json']) {
          writeFileSync(join(dir, f), '// x\n');
          utimesSync(join(dir, f), past, past);
        }
        for (const d of ['src/api', 'src']) utimesSync(join(dir, d), past, past);
        const stamp = join(dir, 'dist/.dnsproxy-build-stamp');
        const first = bash(c, 'need_npm', dir);
        expect(first.code, first.stderr).to.equal(0);
        expect(first.stderr).to.include('dnsproxy: building (no previous build)');
        expect(first.npm).to.deep.equal(['run --silent build']);
        // The stamp moved back between the inputs' time and now, so an input can be made newer than it while still in the past.
        const stampTime = new Date(Date.now() - 100_000); // after the lockfile (120 s ago), before now
        utimesSync(stamp, stampTime, stampTime);
        const stampAt = statSync(stamp).mtimeMs;

        // A warm restart: nothing changed, so no tsc, and the stamp is left as it was.
        const warm = bash(c, 'need_npm', dir);
        expect(warm.code, warm.stderr).to.equal(0);
        expect(warm.npm).to.deep.equal(['run --silent build']);
        expect(warm.stderr).to.include('dnsproxy: build up to date');
        expect(statSync(stamp).mtimeMs).to.equal(stampAt);

        // Each input, made newer than the stamp, triggers exactly one build.
        const later = new Date(stampAt + 10_000);
        let builds = 1;
        const touchAndBuild = (f: string, changed: string) => {
          utimesSync(stamp, stampTime, stampTime);
          utimesSync(join(dir, f), later, later);
          const r = bash(c, 'need_npm', dir);
          expect(r.code, r.stderr).to.equal(0);
          expect(r.stderr).to.include(`dnsproxy: building (${changed} changed)`);
          expect(r.npm).to.have.length(++builds);
          expect(bash(c, 'need_npm', dir).npm).to.have.length(builds);
          utimesSync(join(dir, f), past, past);
        };
        touchAndBuild('src/api/app.ts', 'src/api/app.ts');
        touchAndBuild('tsconfig.json', 'tsconfig.json');
        // A deleted source file changes its directory's mtime.
        utimesSync(stamp, stampTime, stampTime);
        rmSync(join(dir, 'src/main.ts'));
        const r = bash(c, 'need_npm', dir);
        expect(r.stderr).to.include('dnsproxy: building (src changed)');
        expect(r.npm).to.have.length(builds + 1);
      } finally {
        c.cleanup();
      }
    });
  });
});
