// What can be checked of the packaging without a container engine or a cluster: every YAML file
// under deploy/ parses (the `yaml` package, duplicate keys and warnings are errors), every
// Kubernetes object validates against the schema of its apiVersion/kind (kubernetes-models, the
// JSON schemas generated from the Kubernetes OpenAPI spec), probes and ports line up, every environment variable
// the manifests and the compose file set is one MedStream reads (config schema) or the AWS chain,
// the grace period covers the drain timeout, Redis evicts LRU under maxmemory, and the
// Dockerfile runs what the build produces.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { envName, OPTIONS, parseDuration } from '../../src/cli/config.js';
import { parseAllDocuments } from 'yaml';

const ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
const K8S = path.join(ROOT, 'deploy/kubernetes');

type YamlValue = null | boolean | number | string | YamlValue[] | { [key: string]: YamlValue };
type Obj = { [key: string]: YamlValue };

/** Every document of a YAML stream as plain data; any error or warning (duplicate keys, tabs...) throws. */
function parseYamlDocuments(text: string): YamlValue[] {
  return parseAllDocuments(text, { uniqueKeys: true, strict: true }).map((doc) => {
    const problem = doc.errors[0] ?? doc.warnings[0];
    if (problem) throw problem;
    return doc.toJS({ maxAliasCount: 0 }) as YamlValue;
  });
}

/** Validates one object with the kubernetes-models class of its apiVersion and kind. */
async function validateKubernetesObject(doc: Obj): Promise<void> {
  const apiVersion = String(doc.apiVersion);
  const kind = String(doc.kind);
  if (!/^([a-z0-9.-]+\/)?v\d+((alpha|beta)\d+)?$/.test(apiVersion) || !/^[A-Z][A-Za-z]+$/.test(kind))
    throw new Error(`not a Kubernetes apiVersion/kind: ${apiVersion} ${kind}`);
  // One module per apiVersion/kind in the package (`kubernetes-models/apps/v1/Deployment`).
  const specifier = `kubernetes-models/${apiVersion}/${kind}`;
  const module = (await import(/* @vite-ignore */ specifier)) as {
    [name: string]: new (data: Obj) => { validate(): void };
  };
  new module[kind](doc).validate();
}
const obj = (v: YamlValue | undefined): Obj => {
  if (v === null || v === undefined || typeof v !== 'object' || Array.isArray(v))
    throw new Error(`not a mapping: ${JSON.stringify(v)}`);
  return v;
};
const arr = (v: YamlValue | undefined): YamlValue[] => {
  if (!Array.isArray(v)) throw new Error(`not a sequence: ${JSON.stringify(v)}`);
  return v;
};

const manifests: { file: string; doc: Obj }[] = readdirSync(K8S)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort()
  .flatMap((file) =>
    parseYamlDocuments(readFileSync(path.join(K8S, file), 'utf8')).map((doc) => ({ file, doc: obj(doc) })),
  );
const compose = obj(
  parseYamlDocuments(readFileSync(path.join(ROOT, 'deploy/docker-compose.yml'), 'utf8'))[0],
);

const byKind = (kind: string, name: string): Obj => {
  const found = manifests.find((m) => m.doc.kind === kind && obj(m.doc.metadata).name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found.doc;
};

/** Environment variables MedStream reads: the schema's, the storage URL, the AWS chain. */
const KNOWN_ENV = new Set([
  ...OPTIONS.map((o) => envName(o.flag)),
  'MEDSTREAM_STORAGE',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_REGION',
  'AWS_PROFILE',
]);

describe('YAML loading', () => {
  it.each([
    ['a: 1\na: 2', /unique/],
    ['a:\n  b: 1\n c: 2', /indent|Implicit|map/i],
    ['a: [1, 2', /flow|Missing|end/i],
    ['a: b: c', /Nested mappings|mapping/i],
  ])('refuses %j', (text, message) => {
    expect(() => parseYamlDocuments(text)).toThrow(message);
  });
});

describe('deploy/kubernetes', () => {
  it('every object validates against its Kubernetes schema and has metadata.name', async () => {
    expect(manifests.length).toBeGreaterThanOrEqual(7);
    for (const { file, doc } of manifests) {
      await expect(validateKubernetesObject(doc), file).resolves.toBeUndefined();
      expect(typeof obj(doc.metadata).name, file).toBe('string');
    }
    const kinds = manifests.map((m) => m.doc.kind).sort();
    expect(kinds).toEqual(
      [
        'ConfigMap',
        'Deployment',
        'Deployment',
        'HorizontalPodAutoscaler',
        'Secret',
        'Service',
        'Service',
        'PersistentVolumeClaim',
      ].sort(),
    );
  });

  it('the schema check fails on a wrong type, a missing required field and an unknown kind', async () => {
    const broken = structuredClone(byKind('Deployment', 'medstream'));
    const spec = obj(obj(obj(broken.spec).template).spec);
    obj(arr(obj(arr(spec.containers)[0]).ports)[0]).containerPort = 'three thousand';
    await expect(validateKubernetesObject(broken)).rejects.toThrow(/containerPort must be integer/);
    const noSelector = structuredClone(byKind('Deployment', 'medstream'));
    delete obj(noSelector.spec).selector;
    await expect(validateKubernetesObject(noSelector)).rejects.toThrow(/selector/);
    await expect(validateKubernetesObject({ ...broken, kind: 'Deploymnet' })).rejects.toThrow();
  });

  const deployment = byKind('Deployment', 'medstream');
  const podSpec = obj(obj(obj(deployment.spec).template).spec);
  const container = obj(arr(podSpec.containers)[0]);
  const ports = arr(container.ports).map(obj);

  it('probes /health on the container port the Service targets; the selector matches', () => {
    for (const probe of ['readinessProbe', 'livenessProbe']) {
      const get = obj(obj(container[probe]).httpGet);
      expect(get.path).toBe('/health');
      expect(ports.some((p) => p.name === get.port || p.containerPort === get.port)).toBe(true);
    }
    const service = obj(byKind('Service', 'medstream').spec);
    const target = obj(arr(service.ports)[0]).targetPort;
    expect(ports.some((p) => p.name === target || p.containerPort === target)).toBe(true);
    expect(ports.find((p) => p.name === target)?.containerPort).toBe(3000);
    const labels = obj(obj(obj(deployment.spec).template).metadata).labels;
    expect(obj(labels)).toMatchObject(obj(service.selector));
    expect(obj(obj(deployment.spec).selector).matchLabels).toEqual(service.selector);
  });

  it('has resource requests and limits, and runs as non-root', () => {
    const resources = obj(container.resources);
    for (const k of ['requests', 'limits']) {
      expect(obj(resources[k]).cpu).toBeDefined();
      expect(obj(resources[k]).memory).toBeDefined();
    }
    expect(obj(podSpec.securityContext).runAsNonRoot).toBe(true);
  });

  it('the grace period covers the preStop sleep plus --shutdown-timeout', () => {
    const config = obj(byKind('ConfigMap', 'medstream-config').data);
    const drainMs = parseDuration(
      String(
        config.MEDSTREAM_SHUTDOWN_TIMEOUT ?? OPTIONS.find((o) => o.flag === 'shutdown-timeout')!.default,
      ),
    )!;
    const preStop = arr(obj(obj(obj(container.lifecycle).preStop).exec).command);
    const sleepMs = preStop[0] === 'sleep' ? Number(preStop[1]) * 1000 : 0;
    expect(Number(podSpec.terminationGracePeriodSeconds) * 1000).toBeGreaterThan(drainMs + sleepMs);
  });

  it('sets only environment variables MedStream reads, from the ConfigMap and the Secret', () => {
    const configMap = byKind('ConfigMap', 'medstream-config');
    const secret = byKind('Secret', 'medstream-secrets');
    const names = [
      ...Object.keys(obj(configMap.data)),
      ...Object.keys(obj(secret.stringData)),
      ...arr(container.env).map((e) => String(obj(e).name)),
    ];
    for (const name of names) expect(KNOWN_ENV, name).toContain(name);
    // Every value is a string (Kubernetes refuses numbers and booleans in ConfigMap data).
    for (const v of Object.values(obj(configMap.data))) expect(typeof v).toBe('string');
    const from = arr(container.envFrom).map(obj);
    expect(from.map((f) => obj(f.configMapRef ?? {}).name).filter(Boolean)).toEqual(['medstream-config']);
    expect(from.map((f) => obj(f.secretRef ?? {}).name).filter(Boolean)).toEqual(['medstream-secrets']);
    expect(Object.keys(obj(secret.stringData))).toEqual(
      expect.arrayContaining(['MEDSTREAM_AUTH_SECRETS', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']),
    );
  });

  it('points MedStream at the Redis Service, which evicts allkeys-lru under maxmemory', () => {
    const url = String(obj(byKind('ConfigMap', 'medstream-config').data).MEDSTREAM_REDIS_URL);
    const redisService = obj(byKind('Service', 'medstream-redis').spec);
    const port = Number(obj(arr(redisService.ports)[0]).port);
    expect(new URL(url).hostname).toBe('medstream-redis');
    expect(Number(new URL(url).port)).toBe(port);
    const redisPod = obj(obj(obj(byKind('Deployment', 'medstream-redis').spec).template).spec);
    const args = arr(obj(arr(redisPod.containers)[0]).args).map(String);
    expect(args[args.indexOf('--maxmemory-policy') + 1]).toBe('allkeys-lru');
    expect(args).toContain('--maxmemory');
  });

  it('the HPA scales the Deployment on CPU', () => {
    const spec = obj(byKind('HorizontalPodAutoscaler', 'medstream').spec);
    expect(obj(spec.scaleTargetRef)).toMatchObject({ kind: 'Deployment', name: 'medstream' });
    expect(obj(obj(arr(spec.metrics)[0]).resource).name).toBe('cpu');
    expect(Number(spec.minReplicas)).toBeGreaterThanOrEqual(2);
  });
});

describe('deploy/docker-compose.yml', () => {
  it('runs MinIO, Redis and MedStream replicas with known environment variables', () => {
    const services = obj(compose.services);
    expect(Object.keys(services)).toEqual(
      expect.arrayContaining(['minio', 'redis', 'medstream-a', 'medstream-b']),
    );
    for (const name of ['medstream-a', 'medstream-b']) {
      const env = obj(obj(services[name]).environment);
      for (const key of Object.keys(env)) expect(KNOWN_ENV, key).toContain(key);
      expect(new URL(String(env.MEDSTREAM_REDIS_URL)).hostname).toBe('redis');
      expect(new URL(String(env.MEDSTREAM_S3_ENDPOINT)).hostname).toBe('minio');
      expect(obj(obj(services[name]).build).dockerfile).toBe('Dockerfile');
    }
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

  it('builds in one stage and runs production dependencies as non-root in a slim one', () => {
    const froms = instructions.filter((l) => l.startsWith('FROM '));
    // Both stages on the same Node (the native modules npm ci builds or fetches must match it),
    // an LTS line inside package.json's engines range.
    expect(froms).toEqual(['FROM node:24-bookworm-slim AS build', 'FROM node:24-bookworm-slim AS runtime']);
    const engines = (
      JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }
    ).engines.node;
    expect(engines.split('||').map((r) => r.trim())).toContain('^24.0.0');
    const runtime = instructions.slice(instructions.indexOf(froms[1]));
    expect(runtime).toContain('RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force');
    expect(runtime.some((l) => l === 'USER node')).toBe(true);
    expect(
      runtime.some((l) => l.startsWith('HEALTHCHECK') && l.includes('/health') && !l.includes('curl')),
    ).toBe(true);
    expect(runtime).toContain('EXPOSE 3000');
  });

  it('CMD runs the file the build produces, which package.json names too', () => {
    const cmd = instructions.find((l) => l.startsWith('CMD '))!;
    const argv = JSON.parse(cmd.slice(4)) as string[];
    expect(argv[0]).toBe('node');
    const entry = argv[1];
    expect(entry).toBe('dist/cli/main.js');
    // tsconfig.build.json compiles src/ to dist/: the entry's source exists.
    expect(existsSync(path.join(ROOT, entry.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts')))).toBe(true);
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(pkg.bin.medstream).toBe(entry);
    // What the build stage copies in exists.
    for (const l of instructions.filter((i) => i.startsWith('COPY ') && !i.includes('--from'))) {
      for (const src of l.split(/\s+/).slice(1, -1)) expect(existsSync(path.join(ROOT, src)), src).toBe(true);
    }
  });

  it('.dockerignore keeps node_modules and dist out of the context, but not what is copied', () => {
    const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'dist', '.git']));
    for (const copied of ['src', 'scripts', 'samples', 'package.json', 'package-lock.json']) {
      expect(ignored).not.toContain(copied);
    }
  });
});
