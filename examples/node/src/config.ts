/**
 * Configuration comes from the environment only: the ECS task definition sets plain values and
 * injects secrets (the database password) from AWS Secrets Manager, so nothing secret is baked
 * into the image.
 */
export function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(`missing environment variable ${name}`);
  }
  return value;
}

export function optional(name: string, fallback: string): string {
  const value = process.env[name];
  return value === undefined || value === '' ? fallback : value;
}

export function integer(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const value = Number.parseInt(raw, 10);
  if (!Number.isSafeInteger(value)) {
    throw new Error(`${name} must be an integer, got ${raw}`);
  }
  return value;
}

export const service = {
  name: optional('SERVICE_NAME', 'orders'),
  version: optional('SERVICE_VERSION', '0.0.0'),
  environment: optional('DEPLOYMENT_ENVIRONMENT', 'production'),
};
