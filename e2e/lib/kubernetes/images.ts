/**
 * Images for the local cluster's containerd. Nothing can be pulled here, so the images the run built with Docker
 * (the stand-ins and the service images) go in as a `docker save` archive through `ctr images import`, and the two
 * images a cluster brings itself (the pod sandbox and CoreDNS) are one static binary each, made into an image with
 * `docker import`.
 * @see https://github.com/containerd/containerd/blob/main/docs/getting-started.md (ctr images import)
 */
import { mkdtempSync, rmSync, copyFileSync, chmodSync } from 'node:fs';
import { basename, join } from 'node:path';
import { check, docker } from '../exec.ts';
import { type LocalCluster } from './cluster.ts';

/** A one-file image: the static binary at `/<name>`, as its entrypoint. */
export async function singleBinaryImage(binary: string, image: string, scratch: string): Promise<void> {
  const dir = mkdtempSync(join(scratch, 'image-'));
  try {
    const name = basename(binary);
    copyFileSync(binary, join(dir, name));
    chmodSync(join(dir, name), 0o755);
    await check('sh', [
      '-c',
      `tar --owner=0 --group=0 --mtime=@0 -C "$1" -c "$2" | docker import --change "ENTRYPOINT [\\"/$2\\"]" - "$3"`,
      'sh',
      dir,
      name,
      image,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `docker save` of `images` into the cluster's containerd (namespace k8s.io, where the kubelet looks). */
export async function loadImages(cluster: LocalCluster, images: readonly string[], scratch: string): Promise<number> {
  const tar = join(scratch, 'images.tar');
  try {
    for (const i of images) await docker(['image', 'inspect', '--format', '{{.Id}}', i]);
    await docker(['save', '-o', tar, ...images], { timeoutMs: 600_000 });
    await cluster.ctr(['images', 'import', tar], 900_000);
    return images.length;
  } finally {
    rmSync(tar, { force: true });
  }
}
