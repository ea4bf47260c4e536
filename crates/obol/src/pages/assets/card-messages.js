/*
 * obol's pages: what to tell a customer when Stripe refuses a card, the
 * same on the payment page and the invoice page.
 */
window.obolCardMessage = function (error) {
  var code = error.decline_code || error.code || '';
  if (error.type === 'validation_error') { return error.message; }
  if (code === 'payment_intent_authentication_failure' || code === 'setup_intent_authentication_failure' || code === 'authentication_required') {
    return 'Your bank could not confirm it was you, so nothing was charged. Try again or use another card.';
  }
  if (code === 'insufficient_funds') { return 'Your card was declined for insufficient funds. Nothing was charged; try another card.'; }
  if (code === 'expired_card') { return 'Your card has expired. Nothing was charged; try another card.'; }
  if (code === 'incorrect_cvc') { return "The card's security code is wrong. Check it and try again."; }
  if (code === 'incorrect_number' || code === 'invalid_number') { return 'The card number is not valid. Check it and try again.'; }
  if (error.type === 'card_error') { return 'Your card was declined. Nothing was charged; try another card.'; }
  return error.message || 'The payment did not go through. Nothing was charged; please try again.';
};
