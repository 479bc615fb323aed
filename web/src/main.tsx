import { render } from "solid-js/web";

function App() {
  return (
    <main>
      <h1>Loft</h1>
      <p>End-to-end encrypted chat, browser to browser.</p>
    </main>
  );
}

const root = document.getElementById("root");
if (root) render(() => <App />, root);
