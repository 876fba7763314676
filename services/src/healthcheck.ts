import { request } from 'node:http';

/**
 * Docker HEALTHCHECK without curl in the image: GET http://127.0.0.1:$PORT/healthz, exit 0 on 200, else 1.
 * @see https://docs.docker.com/reference/dockerfile/#healthcheck
 */
const port = Number(process.env.PORT ?? '8080');
const req = request({ host: '127.0.0.1', port, path: '/healthz', method: 'GET', timeout: 2000 }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on('timeout', () => {
  req.destroy();
  process.exit(1);
});
req.on('error', () => process.exit(1));
req.end();
