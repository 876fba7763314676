/**
 * Where a service's image comes from. A closed choice, so it is a class with named constructors rather than a
 * string: the targets treat the two very differently (Compose can build, Swarm and Kubernetes cannot).
 */
export abstract class ImageSource {
  /**
   * Built from the synthesized Dockerfile for `service` over the build context `context` (relative to the repo
   * root). The tag is derived from the context's content, so an unchanged build keeps its tag.
   *
   * @param repository the registry repository the image is pushed to (`ghcr.io/acme/async-jobs-producer`).
   *   Targets that cannot build (Swarm, Kubernetes) need it; without it they report an error.
   */
  public static build(context: string, service: string, repository?: string): BuildImage {
    return new BuildImage(context, service, repository);
  }

  /** A published image: `rabbitmq:4.1.4-management`, or pinned `mongo:8.0.12@sha256:<64 hex>`. */
  public static registry(reference: string): RegistryImage {
    return new RegistryImage(reference);
  }

  public abstract readonly kind: 'build' | 'registry';
}

export class BuildImage extends ImageSource {
  public readonly kind = 'build' as const;
  public constructor(
    public readonly context: string,
    public readonly service: string,
    public readonly repository: string | undefined,
  ) {
    super();
  }
}

export class RegistryImage extends ImageSource {
  public readonly kind = 'registry' as const;
  public constructor(public readonly reference: string) {
    super();
  }
}

/** Parts of an image reference, or a problem description. */
export interface ImageReferenceParts {
  readonly repository: string;
  readonly tag: string | undefined;
  readonly digest: string | undefined;
}

/**
 * Splits `repo[:tag][@sha256:hex]`. Returns a string describing what is wrong when the reference is unusable
 * for a deployment: no tag and no digest (implicit `latest`), an explicit `latest`, an empty tag, or a malformed
 * digest.
 *
 * @see https://github.com/distribution/reference/blob/main/reference.go
 */
export function parseImageReference(reference: string): ImageReferenceParts | string {
  const at = reference.indexOf('@');
  const namePart = at === -1 ? reference : reference.slice(0, at);
  const digest = at === -1 ? undefined : reference.slice(at + 1);
  const lastSlash = namePart.lastIndexOf('/');
  const colon = namePart.indexOf(':', lastSlash + 1);
  const repository = colon === -1 ? namePart : namePart.slice(0, colon);
  const tag = colon === -1 ? undefined : namePart.slice(colon + 1);
  const quoted = JSON.stringify(reference);
  if (!/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(repository)) {
    return `got ${quoted}, expected a lowercase repository name such as "rabbitmq" or "ghcr.io/acme/app"`;
  }
  if (digest !== undefined && !/^sha256:[a-f0-9]{64}$/.test(digest)) {
    return `got ${quoted}, expected the digest as "sha256:" followed by 64 lowercase hex digits`;
  }
  if (tag === '') {
    return `got ${quoted}, expected a non-empty tag after ":"`;
  }
  if (tag !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) {
    return `got ${quoted}, expected a tag of letters, digits, "_", "." and "-" (at most 128)`;
  }
  if (tag === 'latest') {
    return `got ${quoted}, expected a pinned tag or digest, not "latest"`;
  }
  if (tag === undefined && digest === undefined) {
    return `got ${quoted}, expected a pinned tag or digest (no tag means "latest")`;
  }
  return { repository, tag, digest };
}
