import { MemoryCertStore } from './memory-cert-store.ts';
import { runCertStoreContract } from './cert-store.contract.ts';

runCertStoreContract('memory', async () => new MemoryCertStore());
