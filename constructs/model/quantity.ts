/**
 * Typed quantities. A raw string such as `512m` means 0.512 bytes to Kubernetes and 512 MB to Compose,
 * so no raw string crosses a target boundary: every renderer asks a quantity for its own spelling.
 *
 * @see https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/
 * @see https://docs.docker.com/reference/compose-file/extension/#specifying-byte-values
 */

const BINARY_UNITS: Readonly<Record<string, number>> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4 };

/** A byte size (memory, ephemeral storage, volume size). Whole mebibytes are the smallest unit. */
export class Memory {
  /** `n` mebibytes (MiB, 2^20 bytes). */
  public static mebibytes(n: number): Memory {
    return new Memory(n, `Memory.mebibytes(${n})`);
  }

  /** `n` gibibytes (GiB, 2^30 bytes). */
  public static gibibytes(n: number): Memory {
    return new Memory(n * 1024, `Memory.gibibytes(${n})`);
  }

  /**
   * Parses a Kubernetes-style binary quantity: `256Mi`, `1Gi`, `512Ki`. Decimal suffixes and bare `m`/`M`/`g`
   * are rejected at validation time because the targets disagree on what they mean.
   */
  public static parse(text: string): Memory {
    const match = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti)$/.exec(text);
    if (!match) {
      return new Memory(Number.NaN, JSON.stringify(text));
    }
    const exponent = BINARY_UNITS[match[2] as string] as number;
    return new Memory(Number(match[1]) * 1024 ** (exponent - 2), JSON.stringify(text));
  }

  private constructor(
    /** Size in MiB; NaN when the input could not be parsed. */
    public readonly mebibytes: number,
    /** How the value was written, for error messages. */
    public readonly source: string,
  ) {}

  /** Problem with this value, or undefined when it is usable. */
  public problem(): string | undefined {
    if (Number.isNaN(this.mebibytes)) {
      return `got ${this.source}, expected a binary quantity such as "512Mi" or Memory.mebibytes(512) ("m" means milli in Kubernetes and mega in Compose)`;
    }
    if (!Number.isInteger(this.mebibytes) || this.mebibytes <= 0) {
      return `got ${this.source}, expected a whole number of mebibytes > 0`;
    }
    return undefined;
  }

  public get bytes(): number {
    return this.mebibytes * 1024 * 1024;
  }

  /** Kubernetes quantity: `512Mi`, `2Gi`. */
  public toKubernetes(): string {
    return this.mebibytes % 1024 === 0 ? `${this.mebibytes / 1024}Gi` : `${this.mebibytes}Mi`;
  }

  /** Docker byte value (binary multiples): `512M`, `2G`. */
  public toDocker(): string {
    return this.mebibytes % 1024 === 0 ? `${this.mebibytes / 1024}G` : `${this.mebibytes}M`;
  }

  public toString(): string {
    return this.toKubernetes();
  }
}

/** CPU time. Whole millicores are the smallest unit. */
export class Cpu {
  /** `n` thousandths of a core. */
  public static millis(n: number): Cpu {
    return new Cpu(n, `Cpu.millis(${n})`);
  }

  /** `n` cores (may be fractional: 0.5). */
  public static cores(n: number): Cpu {
    return new Cpu(Math.round(n * 1000), `Cpu.cores(${n})`);
  }

  /** Parses `500m` or `1.5` (cores), the Kubernetes spellings. */
  public static parse(text: string): Cpu {
    const milli = /^([0-9]+)m$/.exec(text);
    if (milli) {
      return new Cpu(Number(milli[1]), JSON.stringify(text));
    }
    if (/^[0-9]+(\.[0-9]{1,3})?$/.test(text)) {
      return new Cpu(Math.round(Number(text) * 1000), JSON.stringify(text));
    }
    return new Cpu(Number.NaN, JSON.stringify(text));
  }

  private constructor(
    public readonly millicores: number,
    public readonly source: string,
  ) {}

  public problem(): string | undefined {
    if (!Number.isInteger(this.millicores) || this.millicores <= 0) {
      return `got ${this.source}, expected a CPU quantity > 0 such as Cpu.millis(500) or "500m"`;
    }
    return undefined;
  }

  /** Kubernetes quantity: `500m`, `2`. */
  public toKubernetes(): string {
    return this.millicores % 1000 === 0 ? `${this.millicores / 1000}` : `${this.millicores}m`;
  }

  /** Docker `cpus` value: `0.5`, `2`. */
  public toDocker(): string {
    return String(this.millicores / 1000);
  }

  /** Docker Engine API `NanoCPUs`. */
  public toNanoCpus(): number {
    return this.millicores * 1_000_000;
  }

  public toString(): string {
    return this.toKubernetes();
  }
}

/** A duration. Stored in whole seconds, the unit every target accepts. */
export class Duration {
  public static seconds(n: number): Duration {
    return new Duration(n, `Duration.seconds(${n})`);
  }

  public static minutes(n: number): Duration {
    return new Duration(n * 60, `Duration.minutes(${n})`);
  }

  private constructor(
    public readonly seconds: number,
    public readonly source: string,
  ) {}

  public problem(): string | undefined {
    if (!Number.isInteger(this.seconds) || this.seconds < 0) {
      return `got ${this.source}, expected a whole number of seconds ≥ 0`;
    }
    return undefined;
  }

  /** Compose / Swarm duration: `30s`, `1m30s`. */
  public toDocker(): string {
    const minutes = Math.floor(this.seconds / 60);
    const rest = this.seconds % 60;
    if (minutes === 0) return `${rest}s`;
    return rest === 0 ? `${minutes}m` : `${minutes}m${rest}s`;
  }

  public toString(): string {
    return this.toDocker();
  }
}
