import { Construct } from 'constructs';
import type { Memory } from './quantity';

/**
 * Where a secret's value lives. The model never holds a value: every target only references it, so no value can
 * reach a generated file, a log line or Pulumi state in plaintext.
 */
export abstract class SecretSource {
  /**
   * A file on the machine that deploys (Compose and Swarm read it; path relative to the repository root).
   * Kubernetes references a Secret of the same name, Pulumi a secret config value.
   */
  public static file(path: string): SecretSource {
    return new FileSecretSource(path);
  }

  /** Already created on the platform (`docker secret create`, `kubectl create secret`). */
  public static external(): SecretSource {
    return new ExternalSecretSource();
  }

  public abstract readonly kind: 'file' | 'external';
}

export class FileSecretSource extends SecretSource {
  public readonly kind = 'file' as const;
  public constructor(public readonly path: string) {
    super();
  }
}

export class ExternalSecretSource extends SecretSource {
  public readonly kind = 'external' as const;
}

/** Props of {@link Secret}. */
export interface SecretProps {
  /** Where the value comes from. */
  readonly source: SecretSource;
  /** What the secret is for, shown in docs and the parity report. @default no description */
  readonly description?: string;
}

/** A named secret. Services receive it as a file under `/run/secrets/<name>` and an `<ENV>_FILE` variable. */
export class Secret extends Construct {
  public constructor(
    scope: Construct,
    id: string,
    public readonly props: SecretProps,
  ) {
    super(scope, id);
  }
}

/** Props of {@link Volume}. */
export interface VolumeProps {
  /** Capacity requested where the target sizes volumes (Kubernetes PVCs). */
  readonly size: Memory;
  /** Protect from deletion where the target can (Pulumi `protect`). @default true */
  readonly retain?: boolean;
}

/** A named persistent volume. */
export class Volume extends Construct {
  public constructor(
    scope: Construct,
    id: string,
    public readonly props: VolumeProps,
  ) {
    super(scope, id);
  }
}
