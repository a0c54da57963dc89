/** @type {import('next').NextConfig} */
const nextConfig = {
  // The pod's public names (localhost-3000.pod-<slug>.<domain>) are other origins than the dev server's own
  // 127.0.0.1: let the browser load dev resources (HMR) from them.
  allowedDevOrigins: ['*.localhost', '*.*.localhost'],
};

export default nextConfig;
