export default function Home() {
  return (
    <main>
      <h1>Next.js on podgate</h1>
      <p>
        Edit <code>~/app/app/page.js</code>: the page updates as you save.
      </p>
    </main>
  );
}
