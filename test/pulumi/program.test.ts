import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import {
  checkSystem,
  environmentForStack,
  secretConfigKey,
  unacceptedGapMessage,
  unacceptedGaps,
} from '../../constructs/pulumi';
import { REPO_ROOT } from '../helpers';
import { PROJECT, Recorder, resolvedSystem, settle, TYPES, useStack } from './harness';
import main from '../../infra/pulumi';

const DEV_SECRETS = ['api-keys', 'mongo-password', 'rabbitmq-password'];

describe('the Pulumi.yaml main (infra/pulumi.ts)', () => {
  test('stack "dev" deploys environment dev and exports the URLs and container names', async () => {
    const recorder = new Recorder();
    await useStack(recorder, 'dev', DEV_SECRETS);
    const outputs = main();
    expect(outputs.environment).toBe('dev');
    expect(await settle(outputs.containerNames)).toEqual({
      value: [
        'async-jobs-dev-consumer-0',
        'async-jobs-dev-mongo-0',
        'async-jobs-dev-producer-0',
        'async-jobs-dev-rabbitmq-0',
      ],
      secret: false,
    });
    expect(await settle(outputs.producerUrl)).toEqual({ value: 'http://127.0.0.1:8080', secret: false });
    expect(outputs.rabbitmqManagementUrl).toBeDefined();
    expect(await settle(outputs.rabbitmqManagementUrl!)).toEqual({ value: 'http://127.0.0.1:15672', secret: false });
    expect(recorder.ofType(TYPES.component).map((r) => r.name)).toEqual(['async-jobs-dev']);
    expect(recorder.serviceContainers()).toHaveLength(4);
    // Registration order follows when each writer's inputs resolve, which is no contract: compare as a set.
    expect(
      recorder
        .secretsWriters()
        .map((r) => r.name)
        .sort(),
    ).toEqual(['consumer-secrets', 'mongo-secrets', 'producer-secrets', 'rabbitmq-secrets']);
  });

  test('an unknown stack name fails with the stack and the expected names', async () => {
    await useStack(new Recorder(), 'staging', DEV_SECRETS);
    expect(() => main()).toThrow(
      'Pulumi stack "staging" is not an environment of infra/app.ts; expected a stack named one of dev, prod (pulumi stack init <name>)',
    );
  });

  test('a missing secret config value fails with the key and the command that sets it', async () => {
    await useStack(new Recorder(), 'dev', ['api-keys', 'rabbitmq-password']);
    expect(() => main()).toThrow(
      'Stack config lacks a secret the containers mount: async-jobs:mongoPassword (mongo-password); ' +
        'set it with: pulumi config set --secret mongoPassword <value>',
    );
  });

  test('config keys are the camelCase secret names', () => {
    expect(['mongo-password', 'rabbitmq-password', 'rabbitmq-erlang-cookie'].map(secretConfigKey)).toEqual([
      'mongoPassword',
      'rabbitmqPassword',
      'rabbitmqErlangCookie',
    ]);
    expect(PROJECT).toBe((/^name: (\S+)$/m.exec(readFileSync(join(REPO_ROOT, 'Pulumi.yaml'), 'utf8')) ?? [])[1]);
  });

  test('the config namespace is the project name of Pulumi.yaml', async () => {
    await useStack(new Recorder(), 'dev', DEV_SECRETS);
    expect(new pulumi.Config().name).toBe('async-jobs');
  });
});

describe('checks before any resource is created', () => {
  test('the environment for a stack is the stack name', () => {
    expect(environmentForStack('prod', ['dev', 'prod'])).toBe('prod');
  });

  test('prod without accepted Pulumi gaps fails with one message per gap, worded like synth', () => {
    const prod = resolvedSystem('prod');
    const withoutPulumiAcceptances = { ...prod, acceptedGaps: prod.acceptedGaps.filter((g) => g.target !== 'pulumi') };
    expect(unacceptedGaps(withoutPulumiAcceptances).map(unacceptedGapMessage)).toEqual([
      `[prod/rabbitmq] pulumi cannot express "broker-cluster": it runs 1 RabbitMQ container instead of a 3-node cluster; accept it in the model with acceptedGaps: [{ target: 'pulumi', feature: 'broker-cluster', reason: '…' }] or change the model`,
      `[prod/mongo] pulumi cannot express "database-replica-set": it runs 1 MongoDB container instead of a 3-member replica set; accept it in the model with acceptedGaps: [{ target: 'pulumi', feature: 'database-replica-set', reason: '…' }] or change the model`,
      `[prod/producer] pulumi cannot express "autoscaling": it runs a fixed 3 containers instead of scaling from 3 to 10; accept it in the model with acceptedGaps: [{ target: 'pulumi', feature: 'autoscaling', reason: '…' }] or change the model`,
      `[prod/consumer] pulumi cannot express "autoscaling": it runs a fixed 4 containers instead of scaling from 4 to 20; accept it in the model with acceptedGaps: [{ target: 'pulumi', feature: 'autoscaling', reason: '…' }] or change the model`,
      `[prod] pulumi cannot express "ingress-tls": it cannot terminate TLS for jobs.example.com (the Docker provider runs containers, no TLS-terminating proxy; terminate TLS in the proxy in front of the producer); accept it in the model with acceptedGaps: [{ target: 'pulumi', feature: 'ingress-tls', reason: '…' }] or change the model`,
      `[prod] pulumi cannot express "ingress": it has no ingress for jobs.example.com (put a reverse proxy in front of the producer); accept it in the model with acceptedGaps: [{ target: 'pulumi', feature: 'ingress', reason: '…' }] or change the model`,
    ]);
    expect(() => checkSystem(withoutPulumiAcceptances, REPO_ROOT)).toThrow(
      /^The Pulumi program cannot deploy environment "prod" \(6 problems\):\n {2}\[prod\/rabbitmq\] pulumi cannot express "broker-cluster"/,
    );
  });

  test('a published port on several replicas is a gap', () => {
    const dev = resolvedSystem('dev');
    const scaled = { ...dev, services: dev.services.map((s) => (s.name === 'producer' ? { ...s, replicas: 2 } : s)) };
    expect(unacceptedGaps(scaled)).toEqual([
      {
        target: 'pulumi',
        feature: 'published-port-replicas',
        path: 'dev/producer',
        detail: 'publishes its host ports from container 0 only (a host port binds once), not from all 2',
      },
    ]);
  });

  describe('with a copy of the repository', () => {
    let root: string;
    beforeEach(() => {
      root = mkdtempSync(join(tmpdir(), 'pulumi-dist-'));
      cpSync(join(REPO_ROOT, 'dist', 'dev'), join(root, 'dist', 'dev'), { recursive: true });
    });
    afterEach(() => rmSync(root, { recursive: true, force: true }));

    test('the committed Dockerfiles are the ones synth writes now', () => {
      expect(() => checkSystem(resolvedSystem('dev'), root)).not.toThrow();
    });

    test('a missing Dockerfile fails and says to run synth', () => {
      rmSync(join(root, 'dist', 'dev', 'consumer.Dockerfile'));
      expect(() => checkSystem(resolvedSystem('dev'), root)).toThrow(
        'The Pulumi program cannot deploy environment "dev" (1 problem):\n' +
          '  [dev/consumer] pulumi: image build needs dist/dev/consumer.Dockerfile, which does not exist; run `npm run synth` first',
      );
    });

    test('a stale Dockerfile fails and says to run synth', () => {
      writeFileSync(join(root, 'dist', 'dev', 'producer.Dockerfile'), 'FROM scratch\n');
      expect(() => checkSystem(resolvedSystem('dev'), root)).toThrow(
        'The Pulumi program cannot deploy environment "dev" (1 problem):\n' +
          '  [dev/producer] pulumi: dist/dev/producer.Dockerfile is stale (the model changed since it was synthesized); run `npm run synth` first',
      );
    });
  });
});
