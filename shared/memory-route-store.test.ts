import { MemoryRouteStore } from './memory-route-store.ts';
import { runRouteStoreContract } from './route-store.contract.ts';

runRouteStoreContract('memory', async () => new MemoryRouteStore());
